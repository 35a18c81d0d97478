"""Hybrid: TF-IDF word+char features stacked beside frozen mean embeddings, one linear SVM on both.

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
