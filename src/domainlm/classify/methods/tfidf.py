"""TF-IDF + a linear model: word 1-2-grams (the long-standing baseline) or word 1-2-grams and character
2-5-grams (within word boundaries), sublinear tf, balanced class weights; saved with skops."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from domainlm.classify.methods import store


def vectorizer(features: str):
    """Word 1-2-grams, or their union with character 2-5-grams inside word boundaries."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    if features == "word":
        return word
    return make_union(
        word, TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    )


def linear(kind: str, seed: int, multi: bool):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    clf = (
        LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
        if kind == "lr"
        else LinearSVC(class_weight="balanced", random_state=seed)
    )
    return OneVsRestClassifier(clf) if multi else clf


def scores_to_proba(clf, X, multi: bool):
    """Probabilities of a linear model: predict_proba where it has one; otherwise (linear SVM) a softmax
    (sigmoid for multi-label) of the decision scores, which keeps the SVM's own predictions (uncalibrated)."""
    import numpy as np

    if hasattr(clf, "predict_proba"):
        return clf.predict_proba(X)
    z = clf.decision_function(X)
    if z.ndim == 1:  # binary: one score for class 1
        z = np.stack([-z, z], 1) / 2
    if multi:
        return 1 / (1 + np.exp(-z))
    z = z - z.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


@dataclass
class FittedTfidf:
    pipe: object  # sklearn Pipeline(vectorizer, linear model)
    labels: list[str]
    multi: bool

    def predict_proba(self, texts: list[str]):
        vec, clf = self.pipe.steps[0][1], self.pipe.steps[-1][1]
        return scores_to_proba(clf, vec.transform(texts), self.multi)

    def save(self, dest: Path) -> None:
        store.write_meta(dest, "tfidf", self.labels, self.multi)
        store.dump_skops(self.pipe, dest / "model.skops")

    def size(self) -> int:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            self.save(Path(tmp))
            return store.folder_bytes(Path(tmp))


class Tfidf:
    multi_label = True

    def __init__(self, ctx, features: str, kind: str, name: str):
        self.ctx, self.features, self.kind, self.name = ctx, features, kind, name

    def fit(self, texts, y, seed: int, log_dir=None) -> FittedTfidf:
        from sklearn.pipeline import make_pipeline

        pipe = make_pipeline(vectorizer(self.features), linear(self.kind, seed, self.ctx.multi))
        pipe.fit(texts, y)
        return FittedTfidf(pipe, self.ctx.labels, self.ctx.multi)


def factory(features: str, kind: str):
    suffix = "" if features == "word" else "-wc"
    return lambda ctx: Tfidf(ctx, features, kind, f"tfidf{suffix}+{kind}")


def load(path: Path, meta: dict) -> FittedTfidf:
    return FittedTfidf(store.load_skops(path / "model.skops"), meta["labels"], meta["multi_label"])
