"""screen: a short race on the user's own corpus, for `domainlm recommend --task generator`.

Why it exists: the study's corpora disagree for a generator, and corpus size does not tell them apart.
On the constitution (0.37 MB of varied articles) the causal transformers beat the Kneser-Ney 5-gram from
2 minutes on; on the SPDX licences (2.6 MB of near-duplicate boilerplate) the 5-gram is ahead of every
neural LM at 6 minutes (RESULTS.md, model_selection). How formulaic the text is decides, and only a measurement on the
text says that. So for a generator `recommend` trains the evidence's two best causal families on this
corpus (``--screen auto``: 2 minutes each; ``--screen 5m``: longer; ``--screen off``: the lookup
decides), fits the 5-gram on the same training split, and chooses from these numbers.

The rule, stated so a user can check it:
- **screen**: each family is a `domainlm pretrain` run with its preset's recipe, validated every minute
  with keep_best, as the study's cells are, for the run's budget or ``SCREEN_BUDGET`` (2 minutes, the
  study's smallest budget), whichever is shorter;
- **scores**: `domainlm evaluate --baseline ngram`'s bits per character of the first ``SCREEN_DOCS``
  held-out documents, the models' and the 5-gram's (order 5, fitted on the training split): the study's
  own measure;
- **projection**: a run longer than its screen improves as the study measured. Each family's screened
  bits/char is multiplied by its study ratio, bits/char at the study budget nearest the run's over that at
  the budget nearest the screen's (both in the study machine's seconds: this machine's seconds times the
  speed ratio). Over the study corpora the smallest ratio is taken, the one most favourable to the neural
  model; a ratio above 1 counts as 1 (keep_best keeps the best weights a longer run saw);
- **choice**: the family with the lowest projected bits/char; the 5-gram is the better buy when its
  measured bits/char is below that, or within the evidence's noise of it (a tie goes to the cheaper).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from domainlm.reporting import Quiet, Reporter

SCREEN_BUDGET = "2m"  # per family: the study's smallest budget, so its curves start where the screen ends
SCREEN_FAMILIES = 2  # the evidence's best causal families raced
SCREEN_DOCS = 10  # held-out documents scored, as the study's cells (`evaluate --max-docs 10`)
NGRAM_TOKENS = 100_000  # held-out tokens the 5-gram's perplexity reads, as the study's n-gram cell


@dataclass
class Screen:
    """What the screen measured on this corpus."""

    budget_s: float  # each family's pretrain budget
    bits: dict[str, float]  # candidate name -> held-out bits per character after the screen
    ngram: float  # the 5-gram's held-out bits per character, same documents
    wall_s: float  # the whole screen: training, evaluation, the n-gram's fit
    steps: dict[str, int] = field(default_factory=dict)  # candidate name -> training steps taken


@dataclass
class Projection:
    """One screened family's bits per character carried to the run's budget."""

    name: str
    screened: float
    ratio: float
    source: str  # where the ratio comes from, in words

    @property
    def value(self) -> float:
        return self.screened * self.ratio


Screener = Callable[[list, float], Screen]  # (candidates to race, pretrain budget in seconds) -> Screen


def screen_budget(mode: str, budget_s: float) -> float:
    """Each family's pretrain budget: ``mode`` (a duration) or ``SCREEN_BUDGET``, at most the run's."""
    from domainlm.config import parse_duration

    per = parse_duration(SCREEN_BUDGET if mode == "auto" else mode)
    return min(per, budget_s)


def run_screen(
    corpus: Path, tokenizer: Path, cands: list, budget_s: float, reporter: Reporter | None = None
) -> Screen:
    """Train each of ``cands`` (recommend's Candidates, from scratch) for ``budget_s`` on ``corpus`` with
    ``tokenizer``, fit the 5-gram, score all on the same held-out documents. Nothing is kept."""
    from domainlm.evaluate.lm import evaluate
    from domainlm.pretrain.loop import pretrain

    reporter = reporter or Quiet()
    t0 = time.perf_counter()
    bits, steps = {}, {}
    ngram = math.nan
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for c in cands:
            reporter.message(f"screen: training {c.name} for {budget_s:.0f} s on this corpus")
            name = c.name.replace(" ", "-")
            res = pretrain(
                corpus,
                tokenizer,
                preset=c.preset,
                objective=c.objective,
                budget=f"{budget_s:.0f}s",
                name=name,
                runs_dir=tmp,
                overrides=["train.eval_every=1m", "train.keep_best=true", "train.checkpoint_every=1h"],
                resume="never",
                reporter=reporter,
            )
            steps[c.name] = res.steps
            runs.append((c.name, Path(tmp) / name))
        reporter.message("screen: fitting the 5-gram and scoring held-out documents")
        out = evaluate(
            [r for _, r in runs], baseline="ngram", max_docs=SCREEN_DOCS, ngram_tokens=NGRAM_TOKENS
        )
        for label, r in runs:
            result = out[str(r)]
            bits[label] = float(result["bits_per_char"])
            ngram = float(result["baseline"]["ngram"]["bits_per_char"])
    return Screen(budget_s, bits, ngram, time.perf_counter() - t0, steps)


# ----------------------------------------------------------------------------------------------------
# the decision (pure: the screen's numbers and the evidence in, projections out)


def _bits_at(ev: dict, corpus: str, preset: str) -> dict[float, float]:
    """Measured budget (s) -> bits per character of ``preset``'s causal rows on ``corpus``."""
    return {
        float(r["budget_s"]): float(r["bits_per_char"])
        for r in ev["rows"]
        if r["corpus"] == corpus
        and r.get("preset") == preset
        and r.get("objective") == "clm"
        and r.get("budget_s")
        and r.get("bits_per_char") is not None
    }


def _nearest(budgets, seconds: float) -> float:
    x = math.log(max(1.0, seconds))
    return min(budgets, key=lambda b: (round(abs(x - math.log(b)), 9), b))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def project(ev: dict, name: str, preset: str, screened: float, from_s: float, to_s: float) -> Projection:
    """``preset``'s screened bits/char carried from a screen of ``from_s`` to a run of ``to_s`` (both in
    the study machine's seconds) by the most favourable study ratio (the module docstring's rule)."""
    best: tuple[float, str] | None = None
    for corpus in sorted(ev["corpora"]):
        curve = _bits_at(ev, corpus, preset)
        if not curve:
            continue
        a, b = _nearest(curve, from_s), _nearest(curve, to_s)
        ratio = min(1.0, curve[b] / curve[a]) if b > a else 1.0
        why = (
            f"{preset} went from {curve[a]:.3f} at {_minutes(a)} to {curve[b]:.3f} at {_minutes(b)} on "
            f"'{corpus}'"
            if b > a
            else f"the study's nearest budget to this run on '{corpus}' is the screen's ({_minutes(a)})"
        )
        if best is None or ratio < best[0]:
            best = (ratio, why)
    if best is None:
        return Projection(name, screened, 1.0, f"the study has no {preset} curve: not projected")
    return Projection(name, screened, *best)


def decide(screen: Screen, projections: list[Projection], noise: float) -> tuple[Projection, bool]:
    """(the lowest projected family, whether the 5-gram is the better buy: ahead or within ``noise``,
    relative, of it)."""
    best = min(projections, key=lambda p: (p.value, p.name))
    classical = screen.ngram < best.value or abs(screen.ngram - best.value) <= noise * best.value
    return best, classical
