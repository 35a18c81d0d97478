"""Scores and reports of classifiers: metrics, fold summaries, the leaderboard table and plot, the
confusion matrix and the most confident mistakes."""

from __future__ import annotations

from pathlib import Path

from domainlm.classify.data import Dataset

METRIC_KEYS = ("accuracy", "macro_f1", "micro_f1")


def predict(probs, multi: bool):
    return (probs > 0.5).astype(int) if multi else probs.argmax(1)


def classification_metrics(y_true, y_pred, names: list[str]) -> dict:
    """Accuracy (subset accuracy for multi-label), macro/micro-F1 and per-class P/R/F1 (scikit-learn)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    labels = list(range(len(names)))
    kw = {} if getattr(y_true, "ndim", 1) == 2 else {"labels": labels}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0, **kw)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0, **kw)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0, **kw)),
        "per_class": {
            n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, n in enumerate(names)
        },
    }


def summarize(per_fold: list[dict]) -> dict:
    import numpy as np

    out = {}
    for k in METRIC_KEYS:
        v = np.array([m[k] for m in per_fold])
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return out


def plot_confusion(y_true, y_pred, names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5.0, 0.45 * len(names) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=list(range(len(names))),
        display_labels=names,
        ax=ax,
        xticks_rotation=90,
        colorbar=False,
    )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confident_errors(ds: Dataset, docs: list[int], probs, y, top: int) -> list[dict]:
    """The ``top`` most confident wrong predictions: text, gold, predicted, probability."""
    names = ds.label_names
    rows = []
    for r, d in enumerate(docs):
        if ds.multi:
            pred = [names[c] for c in range(len(names)) if probs[r, c] > 0.5]
            gold = [names[c] for c in range(len(names)) if y[d, c] > 0]
            if pred == gold:
                continue
            wrong = [c for c in range(len(names)) if (probs[r, c] > 0.5) != (y[d, c] > 0)]
            conf = max(abs(probs[r, c] - 0.5) * 2 for c in wrong)
            rows.append(
                {"row": d, "text": ds.texts[d], "gold": gold, "predicted": pred, "probability": float(conf)}
            )
        elif int(probs[r].argmax()) != int(y[d]):
            c = int(probs[r].argmax())
            rows.append(
                {
                    "row": d,
                    "text": ds.texts[d],
                    "gold": names[int(y[d])],
                    "predicted": names[c],
                    "probability": float(probs[r, c]),
                }
            )
    rows.sort(key=lambda e: -e["probability"])
    return rows[:top]


def tensorboard_writer(log_dir: Path | None):
    """torch's SummaryWriter into ``log_dir`` when ``tensorboard`` is installed, else None."""
    if log_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: metrics.json holds the same numbers
        return None
    return SummaryWriter(str(log_dir))
