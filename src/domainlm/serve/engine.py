"""The model behind the server: tokenise, run a padded batch (torch or ONNX Runtime), post-process.

The engine is synchronous and single-threaded by design: the app calls it from one worker thread, so
forward passes never compete for the CPU cores (each already uses them all through intra-op threads).
Batches are lists of token-id lists; the engine pads them to the longest (B, T).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from domainlm.errors import UserError
from domainlm.export import Source, load_tok, load_torch, mean_pool, onnx_session, resolve_source


class InputError(ValueError):
    """A request the model cannot answer as sent; ``status`` is the HTTP code (413 or 422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# task -> the routes it answers (besides /health, /info, /metrics)
TASK_ROUTES: dict[str, list[str]] = {
    "classify": ["/predict", "/embed", "/v1/embeddings"],
    "fill-mask": ["/fill-mask", "/embed", "/v1/embeddings"],
    "embed": ["/embed", "/v1/embeddings"],
    "generate": ["/generate"],
}


@dataclass
class Engine:
    """A loaded model. ``backend`` is ``torch`` or ``onnx``; ``max_length`` counts special tokens."""

    task: str
    backend: str
    tok: object
    max_length: int
    model_id: str
    labels: list[str] = field(default_factory=list)
    model: object = None  # torch model (backend torch)
    session: object = None  # onnxruntime session (backend onnx)
    source: str = ""

    # ------------------------------------------------------------------------------------------------
    # tokenising (called in the request handler, before batching)

    def encode(self, texts: list[str], truncate: bool) -> list[list[int]]:
        """Token ids with special tokens; longer than ``max_length`` -> InputError(413) unless truncating.
        A classical classifier (backend ``method``) reads the text itself: its rows are the texts."""
        if self.backend == "method":
            return list(texts)
        ids = self.tok(texts, add_special_tokens=self.task != "generate", truncation=False)["input_ids"]
        out = []
        for i, row in enumerate(ids):
            if len(row) > self.max_length:
                if not truncate:
                    raise InputError(
                        f"input {i} has {len(row)} tokens, more than the model's {self.max_length}"
                        "; send shorter text or set truncate",
                        413,
                    )
                row = self._truncate(row)
            out.append(row)
        return out

    def _truncate(self, row: list[int]) -> list[int]:
        if self.task == "generate":  # keep the end of a prompt: generation continues from it
            return row[-self.max_length :]
        last = row[-1] if row and row[-1] == getattr(self.tok, "sep_token_id", None) else None
        keep = row[: self.max_length - (1 if last is not None else 0)]
        return keep + ([last] if last is not None else [])

    # ------------------------------------------------------------------------------------------------
    # batched compute (called from the worker thread)

    def _pad(self, batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) int64 ids and attention mask, right-padded to the longest row."""
        T = max(len(r) for r in batch)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = np.full((len(batch), T), pad, dtype=np.int64)
        mask = np.zeros((len(batch), T), dtype=np.int64)
        for i, r in enumerate(batch):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return ids, mask

    def _forward(self, ids: np.ndarray, mask: np.ndarray, want: str) -> np.ndarray:
        """``want`` = 'logits' or 'hidden' -> float32 numpy array."""
        if self.backend == "onnx":
            name = "logits" if want == "logits" else "last_hidden_state"
            return self.session.run([name], {"input_ids": ids, "attention_mask": mask})[0]
        import torch

        with torch.inference_mode():
            t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
            if want == "hidden":
                base = self.model if self.task == "embed" else self.model.base_model
                return base(input_ids=t_ids, attention_mask=t_mask).last_hidden_state.float().numpy()
            kw = {"use_cache": False} if self.task == "generate" else {}
            return self.model(input_ids=t_ids, attention_mask=t_mask, **kw).logits.float().numpy()

    def embed_batch(self, batch: list[list[int]]) -> list[np.ndarray]:
        """Mean-pooled last hidden states, one (H,) vector per row."""
        if self.backend == "method":
            raise InputError(
                f"the classifier '{self.model_id}' ({self.source}) has no embeddings: use /predict"
            )
        ids, mask = self._pad(batch)
        return list(mean_pool(self._forward(ids, mask, "hidden"), mask))

    def classify_batch(self, batch: list[list[int]]) -> list[np.ndarray]:
        """Class logits, one (C,) vector per row (a classical method: log-probabilities, whose softmax
        gives its probabilities back)."""
        if self.backend == "method":
            return list(np.log(np.clip(self.model.predict_proba(batch), 1e-12, 1.0)))
        ids, mask = self._pad(batch)
        return list(self._forward(ids, mask, "logits"))

    def fill_mask_batch(self, batch: list[list[int]]) -> list[np.ndarray]:
        """Vocabulary logits at each row's first mask token, one (V,) vector per row."""
        ids, mask = self._pad(batch)
        logits = self._forward(ids, mask, "logits")  # (B, T, V)
        pos = [row.index(self.tok.mask_token_id) for row in batch]
        return [logits[i, p] for i, p in enumerate(pos)]

    def next_logits(self, row: list[int]) -> np.ndarray:
        """(V,) logits of the token after ``row`` (no KV cache: prompts and outputs here are short)."""
        ids, mask = self._pad([row])
        return self._forward(ids, mask, "logits")[0, -1]

    def generate(
        self,
        prompt: list[int],
        max_new_tokens: int,
        temperature: float,
        top_k: int,
        seed: int | None,
        stop_check=None,
    ) -> list[int]:
        """Greedy (temperature 0) or top-k sampling; stops at end-of-text or ``max_length``."""
        rng = np.random.default_rng(seed)
        row = list(prompt)
        new: list[int] = []
        eos = self.tok.eos_token_id
        for _ in range(max_new_tokens):
            if len(row) >= self.max_length or (stop_check is not None and stop_check()):
                break
            logits = self.next_logits(row).astype(np.float64)
            if temperature <= 0:
                nxt = int(logits.argmax())
            else:
                logits = logits / temperature
                if 0 < top_k < len(logits):
                    cut = np.partition(logits, -top_k)[-top_k]
                    logits = np.where(logits < cut, -np.inf, logits)
                p = np.exp(logits - logits.max())
                nxt = int(rng.choice(len(p), p=p / p.sum()))
            if eos is not None and nxt == eos:
                break
            row.append(nxt)
            new.append(nxt)
        return new

    def info(self) -> dict:
        return {
            "model_id": self.model_id,
            "task": self.task,
            "backend": self.backend,
            "max_input_length": self.max_length,
            "labels": self.labels,
            "routes": ["/predict"] if self.backend == "method" else TASK_ROUTES[self.task],
            "vocab_size": len(self.tok) if self.tok is not None else 0,
        }


def _max_length(src: Source, tok) -> int:
    cfg = src.model_config
    pos = cfg.get("max_position_embeddings") or cfg.get("n_positions") or 512
    if cfg.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
        pos -= 2  # fairseq's position offset (padding_idx + 1)
    tmax = getattr(tok, "model_max_length", None)
    if isinstance(tmax, int) and 0 < tmax < 10**6:
        pos = min(pos, tmax)
    return int(pos)


def find_onnx(src: Source) -> Source:
    """The ONNX export to serve for ``src``: itself, or RUN/export/onnx-int8, or RUN/export/onnx."""
    if src.onnx_file is not None:
        return src
    base = src.run_dir or src.path
    for fmt in ("onnx-int8", "onnx"):
        if (base / "export" / fmt / "model.onnx").is_file():
            return resolve_source(base / "export" / fmt)
    from domainlm.tokens.tokenizer import is_installed_general

    if is_installed_general(src.path):
        raise UserError(
            "no ONNX export of the installed general MiniLM",
            "Run `domainlm export general --format onnx-int8 -o DIR` first, then `domainlm serve DIR`",
        )
    raise UserError(
        f"no ONNX export of '{src.path}'",
        f"Run `domainlm export {src.path} --format onnx-int8` first, or serve without --onnx",
    )


def load_engine(path: str | Path, onnx: bool = False, threads: int | None = None) -> Engine:
    """Load a run folder, HF model folder or ONNX export folder for serving."""
    from domainlm import machine

    src = resolve_source(path)
    if src.method is not None:
        return _method_engine(src, onnx)
    if onnx or (src.onnx_file is not None and not (src.model_dir / "model.safetensors").is_file()):
        src = find_onnx(src)
    tok = load_tok(src)
    if src.task == "fill-mask" and tok.mask_token_id is None:
        raise UserError(
            f"the tokenizer of '{path}' has no mask token", "Serve a masked LM with its tokenizer"
        )
    id2label = src.model_config.get("id2label") or {}
    labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]
    common = {
        "task": src.task,
        "tok": tok,
        "max_length": _max_length(src, tok),
        "model_id": src.name,
        "labels": labels,
        "source": str(src.path),
    }
    if src.onnx_file is not None:
        return Engine(backend="onnx", session=onnx_session(src.onnx_file, threads), **common)
    import torch

    torch.set_num_threads(threads or machine.cores())
    return Engine(backend="torch", model=load_torch(src), **common)


# a classical winner reads whole texts; the server's max_chars is its only input limit
METHOD_MAX_LENGTH = 10**9


def _method_engine(src: Source, onnx: bool) -> Engine:
    """An engine for a classifier saved by a non-transformers method of `domainlm finetune`."""
    from domainlm.classify.methods import load_fitted

    if onnx:
        raise UserError(
            f"'{src.path}' is a {src.method['kind']} classifier, not a transformers model",
            "Serve it without --onnx",
        )
    return Engine(
        task="classify",
        backend="method",
        tok=None,
        max_length=METHOD_MAX_LENGTH,
        model_id=src.name,
        labels=list(src.method["labels"]),
        model=load_fitted(src.model_dir),
        source=str(src.path),
    )
