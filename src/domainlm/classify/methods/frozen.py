"""Frozen encoder embeddings + logistic regression, reading the whole document.

Each window of ``max_length`` tokens is embedded by mean-pooling the encoder's last hidden states over
its tokens (sentence-transformers' pooling, which all-MiniLM-L6-v2 was trained with); a document's
vector is the mean or the max of its windows' vectors, L2-normalised, fed to a balanced logistic
regression. The encoder is any HF folder: the general MiniLM or any domainlm run's model. Embeddings
are cached per text, so folds after the first reuse them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from domainlm.classify.methods import store


@dataclass
class Account:
    """CPU seconds a method owes for embeddings another method computed first (the cache is shared, so
    without this the second method using an encoder would look nearly free on the leaderboard)."""

    paid: set = field(default_factory=set)  # texts whose embedding this method computed or was charged
    extra_cpu: float = 0.0

    def charge(self, texts: list[str], computed: set, cost: dict) -> None:
        for t in texts:
            if t not in self.paid:
                self.paid.add(t)
                if t not in computed:
                    self.extra_cpu += cost.get(t, 0.0)


def load_body(model_dir: Path):
    """The frozen body that embeds: ``AutoModel``; for T5 its encoder (``T5EncoderModel``: the span
    model's encoder is what classifies); for domainlm's RNN LM (no config.json) its recurrent layers."""
    import transformers

    from domainlm.pretrain import rnn

    if (model_dir / rnn.CONFIG_FILE).is_file():
        return rnn.RNNBody(rnn.load_rnn(model_dir))
    conf = transformers.AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    cls = transformers.T5EncoderModel if conf.model_type == "t5" else transformers.AutoModel
    return cls.from_pretrained(str(model_dir), local_files_only=True)


class Encoder:
    """A frozen body (``load_body``) that embeds documents window by window; caches per-text window vectors."""

    def __init__(self, model_dir: Path, cfg, bf16: bool = False, model=None, tok=None):
        import transformers

        from domainlm.tokens.tokenizer import load_tokenizer

        self.cfg, self.bf16 = cfg, bf16
        self.tok = tok or load_tokenizer(model_dir)
        if model is None:
            level = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()  # a masked LM's head weights are unused here
            try:
                model = load_body(Path(model_dir))
            finally:
                transformers.logging.set_verbosity(level)
        self.model = model.eval()
        self.cache: dict[str, object] = {}
        self.cost: dict[str, float] = {}  # CPU seconds each text's embedding took

    def window_vectors(self, texts: list[str], account: Account | None = None) -> list:
        """For each text, a (windows, H) array of mean-pooled window embeddings (cached)."""
        import numpy as np
        import torch

        from domainlm.classify.transformer import autocast, make_windows, max_positions, pad, pad_id

        todo = sorted({t for t in texts if t not in self.cache})
        cpu = time.process_time()
        if todo:
            w = make_windows(self.tok, todo, self.cfg, max_positions(self.model.config))
            order = sorted(range(len(w.ids)), key=lambda i: -len(w.ids[i]))
            vecs = [None] * len(w.ids)
            with torch.no_grad(), autocast(self.bf16):
                for s in range(0, len(order), 32):
                    chunk = order[s : s + 32]
                    ids, mask = pad([w.ids[i] for i in chunk], pad_id(self.tok))
                    h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()  # (B, T, H)
                    m = mask.unsqueeze(-1).float()
                    pooled = ((h * m).sum(1) / m.sum(1).clamp(min=1)).numpy()  # (B, H)
                    for j, i in enumerate(chunk):
                        vecs[i] = pooled[j]
            for t, g in zip(todo, w.of(list(range(len(todo)))), strict=True):
                self.cache[t] = np.stack([vecs[i] for i in g])
                self.cost[t] = (time.process_time() - cpu) / len(todo)
        if account is not None:
            account.charge(texts, set(todo), self.cost)
        return [self.cache[t] for t in texts]

    def embed(self, texts: list[str], pooling: str, account: Account | None = None):
        """(N, H) L2-normalised document vectors: mean or max over each document's windows."""
        import numpy as np

        vecs = self.window_vectors(texts, account)
        docs = np.stack([v.mean(0) if pooling == "mean" else v.max(0) for v in vecs])
        return docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)


def shared_encoder(ctx, name: str) -> Encoder:
    """One encoder per task (every embedding method reuses its cache)."""
    key = f"encoder:{ctx.encoder_dir(name)}"
    if key not in ctx.shared:
        ctx.shared[key] = Encoder(ctx.encoder_dir(name), ctx.cfg, ctx.bf16)
    return ctx.shared[key]


def logistic(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, class_weight="balanced", C=10.0, random_state=seed)


@dataclass
class FittedFrozen:
    encoder: Encoder
    head: object  # LogisticRegression
    pooling: str
    labels: list[str]
    kind: str = "frozen"
    account: Account | None = None

    def predict_proba(self, texts: list[str]):
        return self.head.predict_proba(self.encoder.embed(texts, self.pooling, self.account))

    def save(self, dest: Path) -> None:
        c = self.encoder.cfg
        windows = {"max_length": c.max_length, "stride": c.stride, "max_windows": c.max_windows}
        store.write_meta(dest, self.kind, self.labels, False, pooling=self.pooling, windows=windows)
        store.save_encoder(self.encoder.model, self.encoder.tok, dest / "encoder")
        store.dump_skops(self.head, dest / "head.skops")

    def size(self) -> int:
        from domainlm.classify.transformer import parameter_bytes

        return parameter_bytes(self.encoder.model) + int(self.head.coef_.nbytes + self.head.intercept_.nbytes)


class Frozen:
    multi_label = False

    def __init__(self, ctx, pooling: str):
        self.ctx, self.pooling, self.name = ctx, pooling, f"frozen-{pooling}"
        self.account = Account()

    def fit(self, texts, y, seed: int, log_dir=None) -> FittedFrozen:
        enc = shared_encoder(self.ctx, self.name)
        head = logistic(seed).fit(enc.embed(texts, self.pooling, self.account), y)
        return FittedFrozen(enc, head, self.pooling, self.ctx.labels, account=self.account)


def factory(pooling: str):
    return lambda ctx: Frozen(ctx, pooling)


@dataclass
class WindowSettings:
    """The window settings a saved encoder method was trained with (a FinetuneConfig's subset)."""

    max_length: int
    stride: int
    max_windows: int


def load_encoder(path: Path, meta: dict) -> Encoder:
    return Encoder(path / "encoder", WindowSettings(**meta["windows"]))


def load(path: Path, meta: dict) -> FittedFrozen:
    return FittedFrozen(
        load_encoder(path, meta), store.load_skops(path / "head.skops"), meta["pooling"], meta["labels"]
    )
