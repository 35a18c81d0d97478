"""Static embeddings: one vector per token, distilled from the encoder, saved in Model2Vec's format.

Model2Vec's recipe (Tulkens & van Dongen 2024, MinishLab/model2vec): embed every vocabulary token alone
with the encoder, reduce with PCA, weight tokens by frequency, and average a text's token vectors.
Here the vocabulary is the encoder's tokenizer (a domainlm run's tokenizer is trained on the domain
corpus) and the weights are SIF weights ``a / (a + p(token))`` (Arora et al. 2017, a = 1e-3) from the
task's own texts (no labels), which is the domain information. model2vec's own ``distill`` needs its
``distill`` extra (skeletoken), so the few lines of distillation are here; the result is a
``model2vec.StaticModel``, saved with its ``save_pretrained`` (safetensors) and read back by its
``from_pretrained``. A document is encoded whole (no window limit), then a logistic regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from domainlm.classify.methods import frozen, store

PCA_DIMS = 256  # model2vec's default pca_dims
SIF_A = 1e-3  # Arora et al. 2017
MAX_TOKENS = 1_000_000  # read the whole document


def distill(encoder: frozen.Encoder, corpus: list[str], batch: int = 512):
    """A ``model2vec.StaticModel`` distilled from ``encoder`` with SIF weights from ``corpus``."""
    import numpy as np
    import torch
    from model2vec import StaticModel
    from sklearn.decomposition import PCA
    from tokenizers import Tokenizer

    tok = encoder.tok
    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())  # a copy: the encoder keeps its own
    backend.no_truncation()
    backend.no_padding()
    V = backend.get_vocab_size()
    cls, sep = tok.cls_token_id, tok.sep_token_id
    vecs = []
    with torch.no_grad():
        for s in range(0, V, batch):
            ids = torch.arange(s, min(V, s + batch)).unsqueeze(1)  # (B, 1): each token alone
            cols = [torch.full_like(ids, cls)] if cls is not None else []
            cols += [ids] + ([torch.full_like(ids, sep)] if sep is not None else [])
            x = torch.cat(cols, 1)  # (B, 3) with [CLS] and [SEP]
            h = encoder.model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state  # (B, 3, H)
            vecs.append(h[:, 1 if cls is not None else 0].float().numpy())
    E = np.concatenate(vecs)  # (V, H)
    E = PCA(n_components=min(PCA_DIMS, E.shape[1]), svd_solver="full").fit_transform(E)
    counts = np.ones(V)
    for enc in backend.encode_batch(corpus, add_special_tokens=False):
        np.add.at(counts, enc.ids, 1)
    weights = SIF_A / (SIF_A + counts / counts.sum())
    return StaticModel(vectors=(E * weights[:, None]).astype(np.float32), tokenizer=backend, normalize=True)


@dataclass
class FittedStatic:
    model: object  # model2vec.StaticModel
    head: object  # LogisticRegression
    labels: list[str]

    def predict_proba(self, texts: list[str]):
        return self.head.predict_proba(self.model.encode(texts, max_length=MAX_TOKENS))

    def save(self, dest: Path) -> None:
        store.write_meta(dest, "static", self.labels, False)
        self.model.save_pretrained(str(dest / "static"))
        store.dump_skops(self.head, dest / "head.skops")

    def size(self) -> int:
        return int(self.model.embedding.nbytes + self.head.coef_.nbytes)


class Static:
    multi_label = False
    name = "static"

    def __init__(self, ctx):
        self.ctx = ctx

    def model(self):
        if "static" not in self.ctx.shared:  # distilled once per task: it reads no labels
            self.ctx.shared["static"] = distill(frozen.shared_encoder(self.ctx, self.name), self.ctx.corpus)
        return self.ctx.shared["static"]

    def fit(self, texts, y, seed: int, log_dir=None) -> FittedStatic:
        m = self.model()
        head = frozen.logistic(seed).fit(m.encode(texts, max_length=MAX_TOKENS), y)
        return FittedStatic(m, head, self.ctx.labels)


def load(path: Path, meta: dict) -> FittedStatic:
    from model2vec import StaticModel

    return FittedStatic(
        StaticModel.from_pretrained(str(path / "static")),
        store.load_skops(path / "head.skops"),
        meta["labels"],
    )
