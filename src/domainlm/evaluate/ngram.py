"""ngram: the classical baseline beside every neural LM (BENCHMARKS.md: legal text is formulaic).

    domainlm evaluate runs/A --baseline ngram

An interpolated Kneser-Ney n-gram (Chen & Goodman 1998) over the *run's own tokens*, trained on the
train split and scored on the same validation token stream as the neural model, so its perplexity per
token compares directly with a causal LM of the same tokenizer, and per word with anything.

The estimator is NLTK's ``nltk.lm.KneserNeyInterpolated`` (discount 0.1), formula for formula: the test
suite checks that both give the same probability to every n-gram of a stream, seen and unseen. NLTK
itself is not used: its scorer recounts continuations by scanning every context of the next order for
each token it scores (8,840 constitution tokens in 258 s at order 5, 2 cores; slower as the corpus
grows). ``KneserNey`` counts them once at fit time, so a score is ``order`` dictionary lookups (66,075
SPDX tokens in 1.3 s after a 7 s fit; RESULTS.md, model_selection).

KenLM was tried first: ``pip install kenlm`` builds here, but it ships only the query module; estimating
a model needs KenLM's ``lmplz`` program, a C++ build that requires Boost, which this machine lacks.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LIBRARY = "domainlm KneserNey (nltk.lm.KneserNeyInterpolated's formulas)"
START, END, UNK = "<s>", "</s>", "<UNK>"  # NLTK's padding and out-of-vocabulary symbols


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


class KneserNey:
    """Interpolated Kneser-Ney with absolute discount ``discount``, as ``nltk.lm.KneserNeyInterpolated``:

    - the top order (a context of ``order - 1`` tokens) uses raw counts, c(ctx w) / c(ctx);
    - lower orders use continuation counts, N1+(. ctx w) / N1+(. ctx .);
    - every order interpolates with the next lower one, weight discount * N1+(ctx .) / its denominator;
    - the unigram is N1+(. w) / N1+(. .), undiscounted;
    - an unseen context passes the lower order's probability through; a token outside the training
      vocabulary is ``<UNK>``, which no context has seen, so it scores 0 (callers floor it).

    Training documents are padded with ``order - 1`` start and end symbols, as NLTK's
    ``padded_everygram_pipeline`` does."""

    def __init__(self, order: int = 5, discount: float = 0.1):
        if order < 2:
            raise ValueError(f"a Kneser-Ney model needs order >= 2 (got {order})")
        self.order, self.discount = order, discount

    def fit(self, docs: Iterable[Sequence[str]]) -> KneserNey:
        n = self.order
        grams: Counter = Counter()
        for doc in docs:
            padded = [START] * (n - 1) + list(doc) + [END] * (n - 1)
            for i in range(len(padded)):
                for j in range(i + 1, min(i + n, len(padded)) + 1):
                    grams[tuple(padded[i:j])] += 1
        self.vocab = {g[0] for g in grams if len(g) == 1}
        # followers: N1+(ctx .); cont: N1+(. ctx w) keyed by ctx+w; cont_total: N1+(. ctx .) keyed by ctx
        self.followers: Counter = Counter()
        self.cont: Counter = Counter()
        self.cont_total: Counter = Counter()
        self.top: dict[tuple, int] = {}  # c(ctx w) at the top order
        self.top_total: Counter = Counter()  # c(ctx) at the top order
        for g, c in grams.items():
            if len(g) < 2:
                continue
            self.followers[g[:-1]] += 1
            self.cont[g[1:]] += 1
            self.cont_total[g[1:-1]] += 1
            if len(g) == n:
                self.top[g] = c
                self.top_total[g[:-1]] += c
        return self

    def known(self, tokens: Sequence[str]) -> list[str]:
        """``tokens`` with every one outside the training vocabulary replaced by ``<UNK>``."""
        return [t if t in self.vocab else UNK for t in tokens]

    def score(self, word: str, context: Sequence[str] = ()) -> float:
        """P(word | the last ``order - 1`` tokens of ``context``)."""
        return self.score_known(*self.known([word]), tuple(self.known(context)))

    def score_known(self, word: str, ctx: tuple[str, ...]) -> float:
        """``score`` of tokens already passed through ``known`` (each token of a stream is mapped once)."""
        d = self.discount
        ctx = ctx[max(0, len(ctx) - (self.order - 1)) :]
        p = self.cont[(word,)] / self.cont_total[()]
        for k in range(len(ctx) - 1, -1, -1):  # shortest context first
            c = ctx[k:]
            seen = self.followers.get(c, 0)
            if not seen:
                continue  # NLTK: alpha 0, gamma 1
            if len(c) == self.order - 1:
                num, total = self.top.get(c + (word,), 0), self.top_total[c]
            else:
                num, total = self.cont.get(c + (word,), 0), self.cont_total[c]
            p = max(num - d, 0.0) / total + d * seen / total * p
        return p


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


def fit(train_docs: Iterable[Sequence[str]], order: int = 5) -> KneserNey:
    """An interpolated Kneser-Ney ``order``-gram fitted on ``train_docs``."""
    return KneserNey(order).fit(train_docs)


def score(
    lm: KneserNey, docs: Iterable[Sequence[str]], order: int, max_tokens: int, end: bool = True
) -> tuple[float, list[int]]:
    """(total NLL in nats, predictions scored per document) of the first ``max_tokens`` predictions of
    ``docs``, each after ``order - 1`` start symbols; ``end``: also predict ``</s>`` after each."""
    nll, counts, n = 0.0, [], 0
    for doc in docs:
        if n >= max_tokens:
            break
        padded = lm.known([START] * (order - 1) + list(doc) + ([END] if end else []))
        k = 0
        for i in range(order - 1, len(padded)):
            p = lm.score_known(padded[i], tuple(padded[i - order + 1 : i]))
            nll -= math.log(max(p, 1e-12))  # an unseen token under an unseen context can score 0
            k += 1
            if n + k >= max_tokens:
                break
        counts.append(k)
        n += k
    return nll, counts
