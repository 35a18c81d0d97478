"""The classifier leaderboard: every method on the same folds, one table, and a stated rule for the
winner.

Rule: the best mean macro-F1 over folds leads. A method whose per-fold macro-F1 is not significantly
different from the leader's is tied with it, and among the tied the cheapest (fewest CPU seconds over
all folds) wins. "Significantly different": a two-sided paired t-test on per-fold macro-F1 with the
Nadeau & Bengio (2003) corrected variance, which accounts for the overlap of k-fold training sets
(the plain paired t-test over folds is too eager to call differences), at ``alpha`` (default 0.05).
With one fold there is no test, and the best mean wins.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from domainlm.classify.report import METRIC_KEYS, classification_metrics, predict, summarize


@dataclass
class MethodRun:
    """One method's results over the folds."""

    name: str
    per_fold: list[dict] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    size_bytes: int = 0
    oof_docs: list[int] = field(default_factory=list)
    oof_probs: list = field(default_factory=list)
    logs: list = field(default_factory=list)  # training logs of methods that keep one (fine-tuning)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (fastText trains in one)."""
    import resource

    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def cross_validate(
    methods: list, texts: list[str], y, labels: list[str], splits, seed: int, log_root=None, say=None
):
    """Fit and score every method on each fold's (train + validation) -> test documents; fold k's seed is
    ``seed + k``. CPU seconds include embeddings a method reused from another's cache (its ``account``)."""
    import numpy as np

    say = say or (lambda text: None)
    runs = {m.name: MethodRun(m.name) for m in methods}
    multi = y.ndim == 2
    for k, (train, val, test) in enumerate(splits):
        fit_docs = train + val  # methods that stop early cut the same validation split themselves
        for m in methods:
            run = runs[m.name]
            owed = getattr(getattr(m, "account", None), "extra_cpu", 0.0)
            cpu, wall = cpu_seconds(), time.perf_counter()
            log_dir = Path(log_root) / m.name / f"fold-{k + 1}" if log_root else None
            fitted = m.fit([texts[i] for i in fit_docs], y[fit_docs], seed=seed + k, log_dir=log_dir)
            probs = np.asarray(fitted.predict_proba([texts[i] for i in test]))
            run.cpu_s += cpu_seconds() - cpu
            run.cpu_s += getattr(getattr(m, "account", None), "extra_cpu", 0.0) - owed
            run.wall_s += time.perf_counter() - wall
            metrics = classification_metrics(y[test], predict(probs, multi), labels)
            run.per_fold.append(metrics)
            run.oof_docs += test
            run.oof_probs.append(probs)
            run.size_bytes = fitted.size()
            if getattr(fitted, "log", None):
                run.logs.append(fitted.log)
            say(f"fold {k + 1}/{len(splits)}: {m.name}: macro-F1 {metrics['macro_f1']:.3f}")
    return runs


def corrected_paired_t(a: list[float], b: list[float], test_over_train: float) -> float:
    """Two-sided p-value that ``a`` and ``b`` (per-fold scores) differ: Nadeau & Bengio's corrected
    resampled t-test, variance scaled by (1/k + n_test/n_train)."""
    from scipy import stats

    d = [x - y for x, y in zip(a, b, strict=True)]
    k = len(d)
    mean = sum(d) / k
    var = sum((x - mean) ** 2 for x in d) / (k - 1) if k > 1 else 0.0
    if var == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t = mean / math.sqrt((1 / k + test_over_train) * var)
    return float(2 * stats.t.sf(abs(t), df=k - 1))


def rank(runs: dict[str, MethodRun], test_over_train: float, alpha: float = 0.05) -> list[dict]:
    """The leaderboard rows (best mean macro-F1 first) with p-values against the leader and the winner."""
    rows = [
        {
            "method": r.name,
            **summarize(r.per_fold),
            "seconds": round(r.wall_s, 2),
            "cpu_seconds": round(r.cpu_s, 2),
            "size_bytes": int(r.size_bytes),
        }
        for r in runs.values()
    ]
    rows.sort(key=lambda r: -r["macro_f1"]["mean"])
    lead = runs[rows[0]["method"]]
    f1 = {name: [m["macro_f1"] for m in r.per_fold] for name, r in runs.items()}
    for r in rows:
        if len(lead.per_fold) < 2:
            r["p_vs_best"], r["tied_with_best"] = None, r is rows[0]
        else:
            p = 1.0 if r is rows[0] else corrected_paired_t(f1[lead.name], f1[r["method"]], test_over_train)
            r["p_vs_best"], r["tied_with_best"] = round(p, 4), p >= alpha
    winner = min((r for r in rows if r["tied_with_best"]), key=lambda r: r["cpu_seconds"])
    for r in rows:
        r["winner"] = r is winner
    return rows


RULE = (
    "best mean macro-F1; methods not significantly different from it (two-sided corrected paired t-test "
    "over folds, Nadeau & Bengio 2003, p >= {alpha}) are tied, and the tied method with the fewest CPU "
    "seconds wins"
)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Horizontal bars: mean ± std macro-F1 per method, annotated with CPU seconds; the winner marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    names = [r["method"] + ("  (winner)" if r["winner"] else "") for r in rows][::-1]
    means = [r["macro_f1"]["mean"] for r in rows][::-1]
    stds = [r["macro_f1"]["std"] for r in rows][::-1]
    colors = ["tab:green" if r["winner"] else "tab:blue" for r in rows][::-1]
    ax.barh(names, means, xerr=stds, color=colors, capsize=3)
    for i, r in enumerate(rows[::-1]):
        ax.text(0.01, i, f"{r['cpu_seconds']:.0f} CPU s", va="center", color="white", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("macro-F1 (mean ± std over folds)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def oof(run: MethodRun):
    """(documents, probabilities) of a method's out-of-fold predictions."""
    import numpy as np

    return run.oof_docs, np.concatenate(run.oof_probs)


__all__ = ["METRIC_KEYS", "RULE", "MethodRun", "cross_validate", "oof", "plot", "rank"]
