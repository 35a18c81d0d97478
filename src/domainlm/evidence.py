"""evidence: the measured model-selection study, read from package data and looked up for `recommend`.

``benchmarks/model_selection.py`` trains every family at equal wall-clock budgets on the study's corpora
and writes ``assets/evidence/model_selection.json`` (format below). `recommend` asks one question of it:
on the measured corpus nearest to this one, at the measured budget nearest to this one, which family
reached the best quality for this task, and is a classical method (the n-gram, TF-IDF) as good?

Lookup rule (stated, so a user can check it):
- **corpus**: the study corpus whose training characters are nearest on a log scale,
  ``|ln(chars / chars_study)|`` (a corpus twice as large is as far as one half as large); a tie goes
  to the smaller study corpus;
- **budget**: among the budgets measured on that corpus for the task's families, the nearest on a log
  scale, ``|ln(budget / budget_study)|``; a tie goes to the smaller budget (the cautious reading);
  classical methods are trained to completion in seconds and compared at every budget;
- **quality** per task (``TASK_METRICS``): ``generator`` bits per character of held-out text (lower is
  better); ``encoder`` macro-F1 of frozen embeddings + logistic regression (issue 16's protocol, mean over
  folds); ``classify`` the best macro-F1 of any of the family's classifier methods;
- **noise**: two means over ``k`` folds are within noise when their gap is at most two standard errors
  of the difference, ``2 sqrt((s_a^2 + s_b^2) / k)`` (a two-sigma band; the study's leaderboard itself
  uses the corrected paired t-test); a single-run metric (bits per character) is within noise when the
  gap is at most ``noise[metric]`` of the better value (relative; default ``DEFAULT_RELATIVE_NOISE``);
- **classical**: the better buy when the best classical entry is ahead of the best neural one, or within
  noise of it (a tie goes to the cheaper method, as in ``finetune --methods``);
- **untrained** rows (``budget_s`` 0: an encoder family as its seed builds it, or MiniLM as installed) are
  never an entry of a lookup; ``curve`` reads them as the floor of a family's frozen-embedding curve.

Format (``format_version`` 1)::

    {"format_version": 1, "study": "python benchmarks/model_selection.py", "written": "2026-12-03",
     "machine": {... domainlm.machine.describe(), "flags": [...]}, "versions": {"domainlm": ..., ...},
     "corpora": {"demo": {"documents": N, "characters": N, "words": N, "tokens": N, "bytes": N}, ...},
     "machines": {"demo": {... as "machine"}, ...} (optional: the machine each corpus's rows were measured
                  on, one per corpus; recommend's speed ratio compares with that corpus's probe rows),
     "noise": {"bits_per_char": 0.01},
     "rows": [{"corpus": "demo", "family": "bert-mini", "kind": "masked" | "generative" | "classical",
               "preset": "bert-mini" | null, "objective": "mlm" | null, "init_from": "general" | null,
               "tasks": ["encoder", "classify"], "budget_s": 180 | null (classical: trained to the end) | 0
               (untrained: `pretrain --max-steps 0`, MiniLM as installed; frozen-mean only),
               "cpu_s": 361.0 (all the study spent on the row: pretraining, evaluation, classifiers,
                        fine-tuning), "pretrain_cpu_s": 230.0 (optional: the pretraining run alone, what
                        the model costs to make), "bits_per_char": null, "pppl_bits_per_char": 1.9, "accuracy": 0.31,
               "probe_top5": 0.4, "downstream": {"frozen-mean": {"mean": 0.6, "std": 0.04, "folds": 5}},
               "parameters": N, "tokens_per_s": N, "probe_tokens_per_s": N, "peak_rss_mb": N,
               "latency_ms": N, "load": [0.1, 0.3],
               "recipe": {"lr": 0.0014, "batch_size": 8, ...} (optional: the run's resolved recipe, in rows
                         measured since 2026-12-06)}, ...]}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from domainlm.errors import UserError
from domainlm.formats import check_format

FORMAT_VERSION = 1
SHIPPED = Path(__file__).resolve().parent / "assets" / "evidence" / "model_selection.json"
DEFAULT_RELATIVE_NOISE = 0.01  # BENCHMARKS.md: "final validation loss within 1%" is the project's noise band
TASKS = ("encoder", "generator", "classify")

# task -> (metric name, higher is better, what it is)
TASK_METRICS: dict[str, tuple[str, bool, str]] = {
    "generator": ("bits_per_char", False, "held-out bits per character"),
    "encoder": ("frozen macro-F1", True, "macro-F1 of frozen embeddings + logistic regression"),
    "classify": ("macro-F1", True, "the best macro-F1 of the family's classifier methods"),
}


@dataclass
class Entry:
    """One family's measured quality at the looked-up conditions."""

    family: str
    kind: str  # masked | generative | classical
    value: float
    std: float | None  # over folds (downstream metrics); None for a single-run metric
    folds: int
    row: dict
    method: str = ""  # the classifier method behind a downstream value

    @property
    def classical(self) -> bool:
        return self.kind == "classical"


@dataclass
class Lookup:
    """What the evidence says for one (corpus size, budget, task)."""

    corpus: str
    corpus_info: dict
    corpus_distance: float  # |ln(chars / chars_study)|
    budget_s: float
    budget_distance: float  # |ln(budget / budget_study)|
    metric: str
    higher_is_better: bool
    entries: list[Entry]  # best first
    best_neural: Entry | None
    best_classical: Entry | None
    classical_better: bool
    noise_rule: str
    noise: dict  # the evidence's per-metric relative noise (single-run metrics)
    task: str  # what was looked up: encoder | generator | classify


def load(path: str | Path | None = None) -> dict | None:
    """The evidence file at ``path`` (default: the shipped study), checked; None when none is shipped."""
    p = Path(path) if path else SHIPPED
    if not p.is_file():
        if path:
            raise UserError(f"evidence file '{p}' not found", "Pass the JSON written by model_selection.py")
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"evidence file '{p}' is not JSON ({e})", "Re-run model_selection.py") from None
    check_format(data, p, FORMAT_VERSION, "evidence file", "python benchmarks/model_selection.py")
    for key in ("corpora", "rows"):
        if key not in data:
            raise UserError(f"evidence file '{p}' has no '{key}'", "Re-run model_selection.py")
    return data


def value_of(row: dict, task: str) -> tuple[float, float | None, int, str] | None:
    """(value, std or None, folds, method) of ``row`` for ``task``'s metric, or None when not measured."""
    if task == "generator":
        v = row.get("bits_per_char")
        return None if v is None else (float(v), None, 1, "")
    scores = {m: s for m, s in (row.get("downstream") or {}).items() if s and s.get("mean") is not None}
    if task == "encoder":
        scores = {m: s for m, s in scores.items() if m.startswith("frozen") or row.get("kind") == "classical"}
    if not scores:
        return None
    method, s = max(scores.items(), key=lambda kv: kv[1]["mean"])
    return float(s["mean"]), float(s.get("std") or 0.0), int(s.get("folds") or 1), method


def nearest_corpus(ev: dict, characters: int) -> tuple[str, float]:
    """(study corpus nearest to ``characters`` on a log scale, the distance)."""
    sizes = {n: c.get("characters") for n, c in ev["corpora"].items() if c.get("characters")}
    if not sizes:
        raise UserError("the evidence file names no corpus size", "Re-run model_selection.py")
    x = math.log(max(1, characters))
    # rounded so that a float-exact tie (10x either way) is a tie, which goes to the smaller corpus
    name = min(sizes, key=lambda n: (round(abs(x - math.log(sizes[n])), 9), sizes[n]))
    return name, abs(x - math.log(sizes[name]))


def budgets_by_distance(ev: dict, corpus: str, budget_s: float, task: str) -> list[tuple[float, float]]:
    """(measured budget, its distance to ``budget_s`` on a log scale) for ``task`` on ``corpus``, nearest
    first (a tie goes to the smaller budget)."""
    budgets = {
        float(r["budget_s"])
        for r in ev["rows"]
        if r["corpus"] == corpus
        and r.get("budget_s")  # neither a classical fit (None) nor an untrained row (0)
        and task in r.get("tasks", ())
        and value_of(r, task) is not None
    }
    x = math.log(max(1.0, budget_s))
    return sorted(((b, abs(x - math.log(b))) for b in budgets), key=lambda bd: (round(bd[1], 9), bd[0]))


def nearest_budget(ev: dict, corpus: str, budget_s: float, task: str) -> tuple[float, float] | None:
    """(measured budget nearest to ``budget_s`` on a log scale for ``task`` on ``corpus``, the distance)."""
    near = budgets_by_distance(ev, corpus, budget_s, task)
    return near[0] if near else None


def within_noise(best: Entry, other: Entry, noise: dict, metric: str) -> bool:
    """Whether ``other`` is within noise of ``best`` (the rule in the module docstring)."""
    gap = abs(best.value - other.value)
    if best.std is not None and other.std is not None and min(best.folds, other.folds) > 1:
        k = min(best.folds, other.folds)
        return gap <= 2 * math.sqrt((best.std**2 + other.std**2) / k)
    rel = float((noise or {}).get(metric, DEFAULT_RELATIVE_NOISE))
    return gap <= rel * abs(best.value)


def noise_rule(noise: dict, metric: str) -> str:
    if metric == "bits_per_char":
        rel = float((noise or {}).get(metric, DEFAULT_RELATIVE_NOISE))
        return f"within noise: a gap of at most {rel:.0%} of the better value (one run per cell)"
    return "within noise: a gap of at most two standard errors over folds, 2 sqrt((s_a^2 + s_b^2) / k)"


def entries_near(ev: dict, look: Lookup) -> list[tuple[float, list[Entry]]]:
    """(budget, its entries) for ``look``'s corpus and task at every measured budget, nearest to ``look``'s
    first (its own, distance 0): a stage that measured only the best few families at one budget (the
    study's long stage) leaves the others to the budgets beside it."""
    near = budgets_by_distance(ev, look.corpus, look.budget_s, look.task)
    return [(b, _entries(ev, look.corpus, b, look.task, look.higher_is_better)) for b, _ in near]


def entry_of(row: dict, task: str) -> Entry | None:
    """``row`` as an Entry for ``task``'s metric, or None when the row does not measure it."""
    v = value_of(row, task)
    return None if v is None else Entry(row["family"], row.get("kind", ""), v[0], v[1], v[2], row, v[3])


def _entries(ev: dict, corpus: str, budget_s: float, task: str, higher: bool) -> list[Entry]:
    out = []
    for r in ev["rows"]:
        at_budget = r.get("budget_s") is None or float(r["budget_s"]) == budget_s
        if r["corpus"] != corpus or not at_budget:
            continue
        if task not in r.get("tasks", ()) and r.get("kind") != "classical":
            continue
        if (e := entry_of(r, task)) is not None:
            out.append(e)
    out.sort(key=lambda e: (-e.value if higher else e.value, e.family))
    return out


def untrained(row: dict) -> bool:
    """Whether ``row`` is an untrained model (the study's untrained stage, ``budget_s`` 0)."""
    return row.get("budget_s") == 0


def curve(ev: dict, corpus: str, family: str, task: str) -> list[tuple[float, Entry]]:
    """(budget in seconds, entry) of ``family`` on ``corpus`` for ``task``, smallest budget first; for
    the encoder task the untrained row comes first (budget 0), where the study measured one."""
    out = []
    for r in ev["rows"]:
        if r["corpus"] != corpus or r["family"] != family or r.get("budget_s") is None:
            continue
        if untrained(r) and task != "encoder":  # its frozen-mean is not the classify task's best method
            continue
        if task in r.get("tasks", ()) and (e := entry_of(r, task)) is not None:
            out.append((float(r["budget_s"]), e))
    return sorted(out, key=lambda t: t[0])


def lookup(ev: dict, characters: int, budget_s: float, task: str) -> Lookup | None:
    """What the evidence says for a corpus of ``characters`` at ``budget_s``; None where it has nothing."""
    if task not in TASK_METRICS:
        raise UserError(f"unknown task '{task}'", f"Use one of: {', '.join(TASKS)}")
    metric, higher, _ = TASK_METRICS[task]
    corpus, cdist = nearest_corpus(ev, characters)
    nb = nearest_budget(ev, corpus, budget_s, task)
    if nb is None:
        return None
    budget, bdist = nb
    entries = _entries(ev, corpus, budget, task, higher)
    noise = ev.get("noise") or {}
    neural = next((e for e in entries if not e.classical), None)
    classical = next((e for e in entries if e.classical), None)
    better = classical is not None and (
        neural is None
        or (classical.value > neural.value if higher else classical.value < neural.value)
        or within_noise(neural, classical, noise, metric)
    )
    return Lookup(
        corpus,
        ev["corpora"][corpus],
        cdist,
        budget,
        bdist,
        metric,
        higher,
        entries,
        neural,
        classical,
        better,
        noise_rule(noise, metric),
        noise,
        task,
    )


def verdict(look: Lookup) -> str | None:
    """The family the evidence at ``look`` picks: the classical one when it is the better buy."""
    if look.classical_better and look.best_classical is not None:
        return look.best_classical.family
    return look.best_neural.family if look.best_neural is not None else None


def elsewhere(ev: dict, look: Lookup, task: str) -> list[Lookup]:
    """The same question asked of every other study corpus, at its budget nearest to ``look``'s: what
    the evidence says where the corpus differs in kind as well as in size."""
    out = []
    for name, info in sorted(ev["corpora"].items()):
        if name == look.corpus or not info.get("characters"):
            continue
        one = ev | {"corpora": {name: info}, "rows": [r for r in ev["rows"] if r["corpus"] == name]}
        other = lookup(one, info["characters"], look.budget_s, task)
        if other is not None:
            out.append(other)
    return out
