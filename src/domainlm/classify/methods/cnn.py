"""A convolutional text classifier (Kim 2014, "Convolutional Neural Networks for Sentence
Classification", the CNN-rand variant): word embeddings learnt from the task, filters of widths 3, 4
and 5 (100 each), ReLU, max over time, dropout 0.5, a linear layer. Kim's settings, except Adam (lr
1e-3) for Adadelta and no max-norm constraint; the vocabulary and embeddings come from the task's own
training texts, so it needs no encoder.

It reads a document's first ``MAX_TOKENS`` words (max-over-time pooling takes any length; the cap bounds
the cost), against a transformer's few windows and TF-IDF's whole text. Saved as safetensors (the
weights) and JSON (the vocabulary and settings); read back by ``load``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from domainlm.classify.methods import store

SETTINGS = {
    "dim": 128,
    "widths": [3, 4, 5],
    "filters": 100,
    "dropout": 0.5,
    "epochs": 15,
    "batch": 16,
    "lr": 1e-3,
    "min_count": 2,
    "max_vocab": 50_000,
    "max_tokens": 2048,
}
MAX_TOKENS = SETTINGS["max_tokens"]
PAD, UNK = 0, 1
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())[:MAX_TOKENS]


def build_vocab(docs: list[list[str]]) -> list[str]:
    """Words (of ``words``-split documents) seen at least ``min_count`` times, most frequent first (ties
    alphabetical: deterministic)."""
    counts = Counter(w for d in docs for w in d)
    kept = sorted((w for w, c in counts.items() if c >= SETTINGS["min_count"]), key=lambda w: (-counts[w], w))
    return ["[PAD]", "[UNK]", *kept[: SETTINGS["max_vocab"]]]


def _net(vocab_size: int, n_classes: int, s: dict):
    import torch
    from torch import nn

    class KimCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab_size, s["dim"], padding_idx=PAD)
            self.convs = nn.ModuleList(nn.Conv1d(s["dim"], s["filters"], w) for w in s["widths"])
            self.drop = nn.Dropout(s["dropout"])
            self.out = nn.Linear(s["filters"] * len(s["widths"]), n_classes)

        def forward(self, ids):  # (B, T) -> (B, C) logits
            x = self.emb(ids).transpose(1, 2)  # (B, dim, T)
            pooled = [torch.relu(c(x)).amax(dim=2) for c in self.convs]  # each (B, filters)
            return self.out(self.drop(torch.cat(pooled, 1)))

    return KimCNN()


def _batch(rows: list[list[int]]):
    import torch

    width = max(max(len(r) for r in rows), max(SETTINGS["widths"]))  # at least the widest filter
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


@dataclass
class FittedCNN:
    net: object  # KimCNN
    vocab: list[str]
    labels: list[str]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def ids(self, text: str, split: list[str] | None = None) -> list[int]:
        """Token ids of ``text`` (or of its ``words`` already split)."""
        return [self.index.get(w, UNK) for w in (words(text) if split is None else split)] or [UNK]

    def predict_proba(self, texts: list[str]):
        import torch

        self.net.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(texts), 32):
                out.append(torch.softmax(self.net(_batch([self.ids(t) for t in texts[s : s + 32]])), -1))
        return torch.cat(out).numpy() if out else torch.zeros((0, len(self.labels))).numpy()

    def save(self, dest: Path) -> None:
        from safetensors.torch import save_file

        store.write_meta(dest, "cnn", self.labels, False, settings=SETTINGS)
        (dest / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        save_file(
            {k: v.contiguous() for k, v in self.net.state_dict().items()}, str(dest / "model.safetensors")
        )

    def size(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.net.parameters())


class CNN:
    multi_label = False
    name = "cnn"

    def __init__(self, ctx):
        self.ctx = ctx

    def fit(self, texts, y, seed: int, log_dir=None) -> FittedCNN:
        import numpy as np
        import torch

        torch.manual_seed(seed)
        docs = [words(t) for t in texts]  # split once: for the vocabulary and for the ids
        vocab = build_vocab(docs)
        fitted = FittedCNN(_net(len(vocab), len(self.ctx.labels), SETTINGS), vocab, self.ctx.labels)
        rows = [fitted.ids(t, d) for t, d in zip(texts, docs, strict=True)]
        target = torch.as_tensor(np.asarray(y), dtype=torch.long)
        opt = torch.optim.Adam(fitted.net.parameters(), lr=SETTINGS["lr"])
        rng = np.random.default_rng(seed)
        fitted.net.train()
        for _ in range(SETTINGS["epochs"]):
            order = rng.permutation(len(rows))
            for s in range(0, len(order), SETTINGS["batch"]):
                idx = order[s : s + SETTINGS["batch"]]
                loss = torch.nn.functional.cross_entropy(
                    fitted.net(_batch([rows[i] for i in idx])), target[torch.as_tensor(idx)]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
        fitted.net.eval()
        return fitted


def load(path: Path, meta: dict) -> FittedCNN:
    from safetensors.torch import load_file

    vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    net = _net(len(vocab), len(meta["labels"]), meta["settings"])
    net.load_state_dict(load_file(str(path / "model.safetensors")))
    net.eval()
    return FittedCNN(net, vocab, meta["labels"])
