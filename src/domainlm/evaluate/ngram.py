"""ngram: the classical baseline beside every neural LM (BENCHMARKS.md: legal text is formulaic).

    domainlm evaluate runs/A --baseline ngram

An interpolated Kneser-Ney n-gram (Chen & Goodman 1998) over the *run's own tokens*, trained on the
train split and scored on the same validation token stream as the neural model, so its perplexity per
token compares directly with a causal LM of the same tokenizer, and per word with anything.

Library: NLTK's ``nltk.lm.KneserNeyInterpolated`` (maintained, pure Python). KenLM was tried first:
``pip install kenlm`` builds here, but it ships only the query module; estimating a model needs KenLM's
``lmplz`` program, a C++ build that requires Boost, which this machine does not have. NLTK's scorer is
slow (about 100 tokens/s at order 5 on this machine, measured on the constitution), so the validation
stream is capped at ``max_tokens`` and the number of tokens scored is reported next to the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LIBRARY = "nltk.lm.KneserNeyInterpolated"


@dataclass
class NgramResult:
    order: int
    loss: float  # mean negative log-likelihood per token (nats)
    perplexity: float
    tokens: int
    fit_seconds: float
    score_seconds: float
    library: str = LIBRARY

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def split_documents(tokens: Sequence[int], sep_id: int) -> list[list[str]]:
    """A packed token stream (documents separated by ``sep_id``) -> documents as lists of id strings."""
    docs, cur = [], []
    for t in tokens:
        t = int(t)
        if t == sep_id:
            if cur:
                docs.append(cur)
            cur = []
        else:
            cur.append(str(t))
    if cur:
        docs.append(cur)
    return docs


def fit_score(
    train_docs: Iterable[Sequence[str]],
    eval_docs: Iterable[Sequence[str]],
    order: int = 5,
    max_tokens: int = 3000,
) -> NgramResult:
    """Fit a ``order``-gram KN model on ``train_docs``; score the first ``max_tokens`` predictions of
    ``eval_docs`` (each document padded with ``order - 1`` start symbols and ended by ``</s>``)."""
    return fit_and_score(train_docs, eval_docs, order, max_tokens)[0]


def fit_and_score(train_docs, eval_docs, order: int = 5, max_tokens: int = 3000):
    """(``fit_score``'s result, the fitted model) for scoring more text with ``score``."""
    t0 = time.perf_counter()
    lm = fit(train_docs, order)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nll, counts = score(lm, eval_docs, order, max_tokens)
    n = sum(counts)
    loss = nll / max(1, n)
    result = NgramResult(
        order, loss, math.exp(min(loss, 50)), n, round(fit_s, 2), round(time.perf_counter() - t0, 2)
    )
    return result, lm


def fit(train_docs: Iterable[Sequence[str]], order: int = 5):
    """An interpolated Kneser-Ney ``order``-gram (NLTK) fitted on ``train_docs``."""
    try:
        from nltk.lm import KneserNeyInterpolated
        from nltk.lm.preprocessing import padded_everygram_pipeline
    except ImportError:
        from domainlm.errors import UserError

        raise UserError(
            "the n-gram baseline needs NLTK", "Install it: pip install 'domainlm[eval]'"
        ) from None

    lm = KneserNeyInterpolated(order)
    train, vocab = padded_everygram_pipeline(order, [list(d) for d in train_docs])
    lm.fit(train, vocab)
    return lm


def score(
    lm, docs: Iterable[Sequence[str]], order: int, max_tokens: int, end: bool = True
) -> tuple[float, list[int]]:
    """(total NLL in nats, predictions scored per document) of the first ``max_tokens`` predictions of
    ``docs``, each after ``order - 1`` start symbols; ``end``: also predict ``</s>`` after each."""
    from nltk.util import ngrams

    nll, counts, n = 0.0, [], 0
    for doc in docs:
        if n >= max_tokens:
            break
        padded = ["<s>"] * (order - 1) + list(doc) + (["</s>"] if end else [])
        k = 0
        for gram in ngrams(padded, order):
            p = lm.score(gram[-1], gram[:-1])
            nll -= math.log(max(p, 1e-12))  # an unseen token under an unseen context can score 0
            k += 1
            if n + k >= max_tokens:
                break
        counts.append(k)
        n += k
    return nll, counts
