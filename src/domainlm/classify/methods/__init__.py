"""Classifier methods: a registry of ways to turn (texts, labels) into a classifier, compared on the same
folds by `domainlm finetune --methods` (see ``domainlm.classify.leaderboard``).

Each method is one small module; ``METHODS`` maps a name to a factory ``(Context) -> Method``. A fitted
method saves itself in a safe format (safetensors, skops with a trusted-types list, fastText's own
binary format; never pickle) into a folder that ``load_fitted`` reads back for `serve` and `export`.

To add a method: write a module with a factory and a fitted class that follow the protocols below, add
its name to ``METHODS`` (and its saved ``kind`` to ``LOADERS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from domainlm.config import FinetuneConfig
from domainlm.errors import UserError, resolve


class Fitted(Protocol):
    """A trained classifier."""

    labels: list[str]

    def predict_proba(self, texts: list[str]):
        """(N, C) class probabilities (per-label probabilities for multi-label)."""
        ...

    def save(self, dest: Path) -> None:
        """Write the classifier into the folder ``dest`` (created) in a safe format."""
        ...

    def size(self) -> int:
        """Bytes of the model (parameters, or the saved files)."""
        ...


class Method(Protocol):
    """A way to train a classifier; one instance is reused across folds (it may cache features)."""

    name: str
    multi_label: bool  # whether it handles several labels per document

    def fit(self, texts: list[str], y, seed: int, log_dir: Path | None = None) -> Fitted:
        """Train on ``texts`` with targets ``y`` ((N,) class ids or (N, C) 0/1); ``log_dir``: TensorBoard."""
        ...


@dataclass
class Context:
    """What every method may use: the labels, the settings, the encoder (MODEL argument), caches."""

    labels: list[str]
    multi: bool
    cfg: FinetuneConfig
    model_dir: Path | None = None  # a HF model folder (the run's model/) for the neural methods
    bf16: bool = False
    say: Callable[[str], None] = lambda text: None
    shared: dict[str, Any] = field(default_factory=dict)  # caches shared by methods (one encoder load)
    corpus: list[str] = field(default_factory=list)  # every text of the task, without labels

    def encoder_dir(self, method: str) -> Path:
        if self.model_dir is None:
            raise UserError(f"method '{method}' needs a model", "Pass a run folder or a HF model folder")
        return self.model_dir


def _factories() -> dict[str, Callable[[Context], Method]]:
    from domainlm.classify.methods import (
        cnn,
        contrastive,
        fast_text,
        frozen,
        hybrid,
        static,
        tfidf,
        transformer,
    )

    return {
        "tfidf+lr": tfidf.factory("word", "lr"),
        "tfidf+svm": tfidf.factory("word", "svm"),
        "tfidf-wc+lr": tfidf.factory("word+char", "lr"),
        "tfidf-wc+svm": tfidf.factory("word+char", "svm"),
        "fasttext": fast_text.FastText,
        "cnn": cnn.CNN,
        "frozen-mean": frozen.factory("mean"),
        "frozen-max": frozen.factory("max"),
        "static": static.Static,
        "hybrid": hybrid.Hybrid,
        "hybrid-avg": hybrid.Average,
        "contrastive": contrastive.Contrastive,
        "finetune-full": transformer.factory("full"),
        "finetune-head": transformer.factory("head"),
    }


# name -> what it is (the factories are imported lazily: some pull in torch)
METHODS: dict[str, str] = {
    "tfidf+lr": "TF-IDF word 1-2-grams + logistic regression (the classical baseline)",
    "tfidf+svm": "TF-IDF word 1-2-grams + linear SVM (the classical baseline)",
    "tfidf-wc+lr": "TF-IDF word 1-2-grams and character 2-5-grams + logistic regression",
    "tfidf-wc+svm": "TF-IDF word 1-2-grams and character 2-5-grams + linear SVM",
    "fasttext": "fastText supervised (word 1-2-grams, subwords)",
    "cnn": "convolutional classifier over the first 2,048 words, embeddings learnt from the task (Kim 2014)",
    "frozen-mean": "frozen encoder embeddings, mean over a document's windows, + logistic regression",
    "frozen-max": "frozen encoder embeddings, max over a document's windows, + logistic regression",
    "static": "static token embeddings distilled from the encoder (Model2Vec format) + logistic regression",
    "hybrid": "TF-IDF word+char features stacked with frozen mean embeddings + linear SVM",
    "hybrid-avg": "probabilities of TF-IDF word+char + LR and of frozen mean embeddings + LR, averaged",
    "contrastive": "SetFit recipe: contrastive pairs tune the encoder (capped budget), then mean embeddings + LR",
    "finetune-full": "full fine-tuning of the encoder, windows pooled per document in training and prediction",
    "finetune-head": "frozen body, trained head on cached [CLS] states, windows pooled per document",
}
# `--methods auto`: the methods that cost at most minutes of CPU on ~1,000 documents of a few hundred
# words on 2 cores. Left out, to be listed by name: finetune-full and contrastive (tens of minutes to
# hours there: they train the encoder on every window of every document, per fold), finetune-head
# (frozen-mean trains a better-fitted head on the same frozen body) and cnn (it trains on every word of
# every document for 15 epochs per fold; RESULTS.md "downstream" has its cost and score).
AUTO = [
    "tfidf+lr",
    "tfidf+svm",
    "tfidf-wc+svm",
    "fasttext",
    "frozen-mean",
    "frozen-max",
    "static",
    "hybrid",
    "hybrid-avg",
]
# the classical baselines: the RESULT ratio of benchmarks/downstream.py compares every other method to them
TFIDF = ("tfidf+lr", "tfidf+svm", "tfidf-wc+lr", "tfidf-wc+svm")


def method_names(spec: str | list[str], multi: bool) -> list[str]:
    """``auto`` or a comma-separated list (or a list) -> validated names; UserError on an unknown one."""
    items = [spec] if isinstance(spec, str) else list(spec)
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    if names == ["auto"]:
        return [n for n in AUTO if not multi or n in MULTI_LABEL]
    for n in names:
        resolve("classifier method (--methods)", n, METHODS)
    unsupported = [n for n in names if multi and n not in MULTI_LABEL]
    if unsupported:
        raise UserError(
            f"method '{unsupported[0]}' does not handle --multi-label data",
            f"Use one of: {', '.join(sorted(MULTI_LABEL))}",
        )
    if len(set(names)) != len(names):
        raise UserError(f"--methods lists a method twice: {','.join(names)}", "Name each method once")
    return names


MULTI_LABEL = {"tfidf+lr", "tfidf+svm", "tfidf-wc+lr", "tfidf-wc+svm", "finetune-full", "finetune-head"}


def make(name: str, ctx: Context) -> Method:
    return _factories()[name](ctx)


def load_fitted(path: str | Path) -> Fitted:
    """A fitted method saved by ``Fitted.save`` (a folder with ``domainlm_method.json``)."""
    from domainlm.classify.methods import store

    meta = store.read_meta(Path(path))
    loaders = _loaders()
    return resolve("saved classifier kind", meta["kind"], loaders)(Path(path), meta)


def _loaders() -> dict[str, Callable[[Path, dict], Fitted]]:
    from domainlm.classify.methods import cnn, fast_text, frozen, hybrid, static, tfidf

    return {
        "cnn": cnn.load,
        "tfidf": tfidf.load,
        "fasttext": fast_text.load,
        "frozen": frozen.load,
        "static": static.load,
        "hybrid": hybrid.load,
        "hybrid-avg": hybrid.load_average,
    }
