"""Similarity search over the run's corpus for the page: the first documents embedded once, cosine top-k.

The index is built on the first /search (not at start-up, so serving a model costs nothing until the
page asks): the first ``search_max_docs`` documents of the corpus folder in file order, each cut to
the model's length, mean-pooled and L2-normalised through the same tokenizer thread and micro-batcher
as /embed. The build is shielded from the request's timeout: a first query that times out (503)
leaves the build running, and the next one uses it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from domainlm.errors import UserError

SNIPPET_CHARS = 300  # what a hit shows of its document
GROUP = 64  # documents tokenised and submitted together while building


class CorpusIndex:
    def __init__(self, corpus: Path, max_docs: int):
        self.corpus, self.max_docs = Path(corpus), max_docs
        self._build_task: asyncio.Task | None = None

    def _documents(self) -> tuple[list[str], list[str]]:
        from domainlm.corpus.documents import read_documents

        ids, texts = [], []
        for doc in read_documents(self.corpus):
            ids.append(str(doc["id"]))
            texts.append(doc["text"])
            if len(ids) >= self.max_docs:
                break
        return ids, texts

    async def _build(self, rt) -> tuple[list[str], list[str], np.ndarray]:
        ids, texts = await asyncio.get_running_loop().run_in_executor(rt.tok_executor, self._documents)
        vecs: list[np.ndarray] = []
        for start in range(0, len(texts), GROUP):
            group = [t[: rt.cfg.max_chars] for t in texts[start : start + GROUP]]
            vecs += (await rt.embeddings(group, True, True))[0]
        matrix = np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, 1), np.float32)  # (N, H)
        return ids, [t[:SNIPPET_CHARS] for t in texts], matrix

    async def query(self, rt, vector: np.ndarray, top_k: int) -> list[dict]:
        """The ``top_k`` documents nearest to the L2-normalised ``vector``: score, id, snippet."""
        task = self._build_task
        stale = task is None or task.get_loop() is not asyncio.get_running_loop()
        if stale or (task.done() and (task.cancelled() or task.exception() is not None)):
            self._build_task = asyncio.ensure_future(self._build(rt))  # first query, or retry a failed build
        ids, snippets, matrix = await asyncio.shield(self._build_task)
        if not ids:
            return []
        scores = matrix @ vector.astype(np.float32)  # (N,)
        top = np.argsort(-scores, kind="stable")[:top_k]
        return [{"score": float(scores[i]), "id": ids[i], "text": snippets[i]} for i in top]


def corpus_of(config: dict, override: str | None) -> Path | None:
    """The corpus folder the page searches: ``serve.corpus``, else the run's config.yaml ``corpus``."""
    if override:
        if not (Path(override) / "documents.jsonl").is_file():
            raise UserError(
                f"serve.corpus '{override}' is not a corpus folder (no documents.jsonl)",
                "Point it at a folder made by `domainlm prepare`, or leave it unset",
            )
        return Path(override)
    path = config.get("corpus")
    # a run moved to another machine may name a corpus that is not there: the page then does without search
    return Path(path) if path and (Path(path) / "documents.jsonl").is_file() else None
