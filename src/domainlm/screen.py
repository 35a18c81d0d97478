"""screen: a race on the user's own corpus, for `domainlm recommend --task generator`.

Why it exists: the study's corpora disagree for a generator, and corpus size does not tell them apart.
On the constitution (0.37 MB of varied articles) the causal transformers beat the Kneser-Ney 5-gram from
2 minutes on; on the SPDX licences (2.6 MB of near-duplicate boilerplate) the 5-gram is ahead of every
neural LM at 6 minutes (RESULTS.md, model_selection). How formulaic the text is decides, and only a measurement on the
text says that. So for a generator `recommend` trains the evidence's two best causal families on this
corpus (``--screen auto``: 2 minutes each, or to the bottom of their held-out loss when the run is
limited by its data, see below; ``--screen 5m``: a cap; ``--screen off``: the lookup decides), fits the
5-gram on the same training split, and chooses from these numbers.

The rule, stated so a user can check it:
- **regime**: the run's passes over the corpus (recommend's measured tokens/s times the training time,
  over the corpus's tokens; the fastest raced family). Up to ``DATA_LIMITED_EPOCHS`` (4) passes the run
  is limited by compute: repeated text is worth almost as much as new for that long (Muennighoff et al.
  2023, "Scaling Data-Constrained Language Models"), held-out loss still falls at the end, and the
  ranking after 2 minutes is the one the study's curves carry on. Past it the run is limited by the
  data: held-out loss bottoms out after a few passes and the run ships that bottom (keep_best), which
  the 2-minute ranking does not predict (measured, RESULTS.md "the generator screen": on the
  constitution GPT-2 leads after 2 minutes, Llama's bottom, after ~7 passes, is 4% lower);
- **screen**: each family is a `domainlm pretrain` run with its preset's recipe and keep_best, as the
  study's cells are. Compute-limited: validated every minute, for ``SCREEN_BUDGET`` (2 minutes, the
  study's smallest budget) or the run's budget, whichever is shorter. Data-limited: with the run's own
  budget (so the same learning-rate schedule), validated every ``PATIENCE_EVERY``, stopped once
  ``PATIENCE`` validations in a row found no lower loss (``train.patience``): it measures the bottom the
  run would ship, and costs at most the run's budget per family. ``--screen DURATION`` caps either;
- **scores**: `domainlm evaluate --baseline ngram`'s bits per character of the first ``SCREEN_DOCS``
  held-out documents, the models' and the 5-gram's (order 5, fitted on the training split): the study's
  own measure;
- **projection**: a family that stopped at its bottom, or screened for the run's whole budget, is not
  projected. Otherwise a run longer than its screen improves as the study measured: the screened
  bits/char is multiplied by the family's study ratio, bits/char at the study budget nearest the run's
  over that at the budget nearest the screen's (both in the study machine's seconds: this machine's
  seconds times the speed ratio). Over the study corpora the smallest ratio is taken, the one most
  favourable to the neural model; a ratio above 1 counts as 1 (keep_best keeps the best weights a longer
  run saw);
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
# past this many passes over the corpus a run is limited by its data, not its compute: Muennighoff et al.
# 2023 found up to ~4 epochs of repeated data worth almost as much as unique data, and less after
DATA_LIMITED_EPOCHS = 4.0
# data-limited screens: validate every PATIENCE_EVERY, stop a family after PATIENCE validations without a
# lower held-out loss (a minute past its bottom); the compute-limited screen validates every minute
PATIENCE, PATIENCE_EVERY, EVAL_EVERY = 2, "30s", "1m"
# the rule's version, stored with validate's measurements so that a change re-measures them
SCREEN_RULE = 2


@dataclass
class Plan:
    """How long the screen trains each family, and whether it stops at the bottom."""

    seconds: float  # each family's pretrain budget
    epochs: float  # passes over the corpus the run would make
    patience: int | None = None  # data-limited: validations without a lower loss before a family stops

    @property
    def data_limited(self) -> bool:
        return self.patience is not None


@dataclass
class Screen:
    """What the screen measured on this corpus."""

    budget_s: float  # each family's pretrain budget
    bits: dict[str, float]  # candidate name -> held-out bits per character after the screen
    ngram: float  # the 5-gram's held-out bits per character, same documents
    wall_s: float  # the whole screen: training, evaluation, the n-gram's fit
    steps: dict[str, int] = field(default_factory=dict)  # candidate name -> training steps taken
    patience: int | None = None  # the plan's: data-limited screens stop a family at its bottom
    stopped_by: dict[str, str] = field(default_factory=dict)  # candidate name -> why its training stopped
    best_s: dict[str, float] = field(default_factory=dict)  # candidate name -> seconds to its kept validation

    def bottomed(self, name: str) -> bool:
        """Whether ``name`` stopped because its held-out loss had stopped falling (data-limited)."""
        return self.stopped_by.get(name) == "patience"


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


Screener = Callable[[list, Plan], Screen]  # (candidates to race, the plan) -> Screen


def screen_plan(mode: str, budget_s: float, epochs: float) -> Plan:
    """The screen for a run of ``budget_s`` that passes ``epochs`` times over the corpus; ``mode`` auto |
    a duration (a cap). The module docstring's regime rule."""
    from domainlm.config import parse_duration

    data_limited = epochs > DATA_LIMITED_EPOCHS
    if mode == "auto":
        cap = budget_s if data_limited else parse_duration(SCREEN_BUDGET)
    else:
        cap = parse_duration(mode)
    return Plan(min(cap, budget_s), epochs, PATIENCE if data_limited else None)


def _best_seconds(history: list[dict]) -> float:
    """Seconds of training to the validation with the lowest loss (keep_best's), from a run's history."""
    rows = [h for h in history if "val_loss" in h and h["step"] > 0]
    return float(min(rows, key=lambda h: (h["val_loss"], h["step"]))["elapsed"]) if rows else 0.0


def run_screen(
    corpus: Path, tokenizer: Path, cands: list, plan: Plan, reporter: Reporter | None = None
) -> Screen:
    """Train each of ``cands`` (recommend's Candidates, from scratch) on ``corpus`` with ``tokenizer`` as
    ``plan`` says, fit the 5-gram, score all on the same held-out documents. Nothing is kept."""
    from domainlm.evaluate.lm import evaluate
    from domainlm.pretrain.loop import pretrain

    reporter = reporter or Quiet()
    t0 = time.perf_counter()
    out = Screen(plan.seconds, {}, math.nan, 0.0, patience=plan.patience)
    sets = ["train.keep_best=true", "train.checkpoint_every=1h"]
    if plan.data_limited:
        sets += [f"train.eval_every={PATIENCE_EVERY}", f"train.patience={plan.patience}"]
    else:
        sets += [f"train.eval_every={EVAL_EVERY}"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for c in cands:
            until = " or until its held-out loss stops falling" if plan.data_limited else ""
            reporter.message(f"screen: training {c.name} for {plan.seconds:.0f} s{until} on this corpus")
            name = c.name.replace(" ", "-")
            res = pretrain(
                corpus,
                tokenizer,
                preset=c.preset,
                objective=c.objective,
                budget=f"{plan.seconds:.0f}s",
                name=name,
                runs_dir=tmp,
                overrides=sets,
                resume="never",
                reporter=reporter,
            )
            out.steps[c.name], out.stopped_by[c.name] = res.steps, res.stopped_by
            out.best_s[c.name] = _best_seconds(res.history)
            runs.append((c.name, Path(tmp) / name))
        reporter.message("screen: fitting the 5-gram and scoring held-out documents")
        scored = evaluate(
            [r for _, r in runs], baseline="ngram", max_docs=SCREEN_DOCS, ngram_tokens=NGRAM_TOKENS
        )
        for label, r in runs:
            result = scored[str(r)]
            out.bits[label] = float(result["bits_per_char"])
            out.ngram = float(result["baseline"]["ngram"]["bits_per_char"])
    out.wall_s = time.perf_counter() - t0
    return out


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
            f"'{corpus}', the study corpus most favourable to it"
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
