"""What every route shares: the engine, the limits, the batchers and worker threads (kept in ``app.state``).

The model runs on one worker thread (forward passes never compete for the cores) behind one
micro-batcher per kind of forward pass; tokenising runs on a second thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from starlette.requests import Request

from domainlm.serve.batching import MicroBatcher
from domainlm.serve.engine import Engine, InputError
from domainlm.serve.limits import ServeConfig
from domainlm.serve.metrics import Metrics

Texts = str | list[str]


@dataclass
class Runtime:
    engine: Engine
    cfg: ServeConfig
    metrics: Metrics
    search: object = None  # a serve.search.CorpusIndex when the page can search the run's corpus
    page: dict = field(default_factory=dict)  # what the page at / shows that does not change (serve.page)
    run_dir: Path | None = None  # where the run's metrics files are
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="domainlm-model")
    )
    tok_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="domainlm-tokenize")
    )

    def __post_init__(self) -> None:
        def batcher(fn) -> MicroBatcher:
            cfg = self.cfg
            wait_s = cfg.batch_wait_ms / 1000
            return MicroBatcher(
                fn,
                self.executor,
                cfg.max_batch,
                wait_s,
                self.metrics.batch_size.observe,
                cfg.max_batch_tokens,
            )

        self.embed_b = batcher(self.engine.embed_batch)
        self.classify_b = batcher(self.engine.classify_batch)
        self.fill_b = batcher(self.engine.fill_mask_batch)

    async def close(self) -> None:
        for b in (self.embed_b, self.classify_b, self.fill_b):
            await b.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.tok_executor.shutdown(wait=False, cancel_futures=True)

    def texts_of(self, inputs: Texts, truncate: bool) -> list[str]:
        """The request's texts, checked against ``max_texts`` and ``max_chars`` (413), or cut if truncating."""
        cfg = self.cfg
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not texts:
            raise InputError("inputs is empty: send at least one text")
        if len(texts) > cfg.max_texts:
            raise InputError(f"{len(texts)} texts in one request, more than {cfg.max_texts}", 413)
        out = []
        for i, t in enumerate(texts):
            if len(t) > cfg.max_chars:
                if not truncate:
                    raise InputError(
                        f"text {i} has {len(t)} characters, more than {cfg.max_chars}; "
                        "send shorter text or set truncate",
                        413,
                    )
                t = t[: cfg.max_chars]
            out.append(t)
        return out

    async def encode(self, texts: list[str], truncate: bool) -> list[list[int]]:
        # off the event loop (64 texts x 20,000 characters take a while; /health must stay responsive),
        # on one thread: a fast tokenizer's truncation/padding state is shared and not thread-safe
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.tok_executor, self.engine.encode, texts, truncate)

    async def embeddings(
        self, texts: list[str], truncate: bool, normalize: bool
    ) -> tuple[list[np.ndarray], int]:
        """(one (H,) vector per text, tokens read)."""
        rows = await self.encode(texts, truncate)
        vecs = await self.embed_b.submit(rows)
        if normalize:
            vecs = [v / max(float(np.linalg.norm(v)), 1e-12) for v in vecs]
        return vecs, sum(len(r) for r in rows)


def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's :class:`Runtime`."""
    return request.app.state.runtime
