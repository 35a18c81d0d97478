"""Hybrids of TF-IDF and frozen embeddings, the two ways the literature combines them:

- ``hybrid``: TF-IDF word+char features stacked beside frozen mean embeddings, one linear SVM on both;
- ``hybrid-avg``: the probabilities of TF-IDF word+char + logistic regression and of frozen mean
  embeddings + logistic regression, averaged (both heads are logistic, so their probabilities are on
  one scale; an SVM's softmaxed scores are not).

TF-IDF reads every word of a long document; the embedding adds what the encoder knows about meaning.
Feeding TF-IDF signal beside a legal BERT is what beat TF-IDF+SVM on long legal texts (Mamakas et al.
2022, "Processing Long Legal Documents with Pre-trained Transformers"). Each TF-IDF block and the
embedding are L2-normalised, so neither dominates by scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from domainlm.classify.methods import frozen, store, tfidf


def stack(tfidf_features, embeddings):
    import scipy.sparse as sp

    return sp.hstack([tfidf_features, sp.csr_matrix(embeddings)]).tocsr()


@dataclass
class FittedHybrid:
    vectorizer: object  # FeatureUnion of TF-IDF vectorizers
    encoder: frozen.Encoder
    svm: object  # LinearSVC
    labels: list[str]
    account: frozen.Account | None = None

    def features(self, texts: list[str]):
        return stack(self.vectorizer.transform(texts), self.encoder.embed(texts, "mean", self.account))

    def predict_proba(self, texts: list[str]):
        return tfidf.scores_to_proba(self.svm, self.features(texts), False)

    def save(self, dest: Path) -> None:
        c = self.encoder.cfg
        windows = {"max_length": c.max_length, "stride": c.stride, "max_windows": c.max_windows}
        store.write_meta(dest, "hybrid", self.labels, False, windows=windows)
        store.save_encoder(self.encoder.model, self.encoder.tok, dest / "encoder")
        store.dump_skops(self.vectorizer, dest / "tfidf.skops")
        store.dump_skops(self.svm, dest / "head.skops")

    def size(self) -> int:
        from domainlm.classify.transformer import parameter_bytes

        return parameter_bytes(self.encoder.model) + int(self.svm.coef_.nbytes)


class Hybrid:
    multi_label = False
    name = "hybrid"

    def __init__(self, ctx):
        self.ctx = ctx
        self.account = frozen.Account()

    def fit(self, texts, y, seed: int, log_dir=None) -> FittedHybrid:
        enc = frozen.shared_encoder(self.ctx, self.name)
        vec = tfidf.vectorizer("word+char")
        X = stack(vec.fit_transform(texts), enc.embed(texts, "mean", self.account))
        svm = tfidf.linear("svm", seed, False).fit(X, y)
        return FittedHybrid(vec, enc, svm, self.ctx.labels, self.account)


def load(path: Path, meta: dict) -> FittedHybrid:
    return FittedHybrid(
        store.load_skops(path / "tfidf.skops"),
        frozen.load_encoder(path, meta),
        store.load_skops(path / "head.skops"),
        meta["labels"],
    )


@dataclass
class FittedAverage:
    tfidf: tfidf.FittedTfidf
    frozen: frozen.FittedFrozen
    labels: list[str]

    def predict_proba(self, texts: list[str]):
        return (self.tfidf.predict_proba(texts) + self.frozen.predict_proba(texts)) / 2

    def save(self, dest: Path) -> None:
        c = self.frozen.encoder.cfg
        windows = {"max_length": c.max_length, "stride": c.stride, "max_windows": c.max_windows}
        store.write_meta(dest, "hybrid-avg", self.labels, False, pooling="mean", windows=windows)
        store.save_encoder(self.frozen.encoder.model, self.frozen.encoder.tok, dest / "encoder")
        store.dump_skops(self.frozen.head, dest / "head.skops")
        store.dump_skops(self.tfidf.pipe, dest / "tfidf.skops")

    def size(self) -> int:
        return self.frozen.size() + self.tfidf.size()


class Average:
    multi_label = False
    name = "hybrid-avg"

    def __init__(self, ctx):
        self.ctx = ctx
        self.frozen = frozen.Frozen(ctx, "mean")
        self.account = self.frozen.account  # the leaderboard charges embeddings through it
        self.tfidf = tfidf.Tfidf(ctx, "word+char", "lr", "tfidf-wc+lr")

    def fit(self, texts, y, seed: int, log_dir=None) -> FittedAverage:
        return FittedAverage(self.tfidf.fit(texts, y, seed), self.frozen.fit(texts, y, seed), self.ctx.labels)


def load_average(path: Path, meta: dict) -> FittedAverage:
    head = frozen.FittedFrozen(
        frozen.load_encoder(path, meta), store.load_skops(path / "head.skops"), "mean", meta["labels"]
    )
    return FittedAverage(
        tfidf.FittedTfidf(store.load_skops(path / "tfidf.skops"), meta["labels"], False), head, meta["labels"]
    )
