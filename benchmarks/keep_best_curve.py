"""Which step should train.keep_best ship? Every validation of one masked-LM run, scored on unseen text.

A masked LM trained for many passes over a small corpus reaches its lowest held-out loss early, while its
masked accuracy keeps climbing (RESULTS.md, time_to_quality, "which step keep_best ships"). The choice of
``train.keep_best_metric`` rests on which of the two picks the better model. This benchmark answers it for
one corpus and seed:

1. ``domainlm pretrain`` of modernbert-mini for the budget, validated every minute, in a child process
   whose loop also saves the weights of every validation (``DUMP/step-N``: the exact step, not the
   nearest checkpoint);
2. each saved step becomes a run folder (the run's config, tokenizer, and that step's weights);
3. ``domainlm evaluate --split test`` scores them all on the **test split**, which neither training nor
   the choice of step saw (masked accuracy on fixed masks, pseudo-log-likelihood bits per
   character, cloze probes) and ``domainlm finetune --methods frozen-mean --leaderboard-only`` their
   frozen embeddings on the corpus's labelled task (5 folds), as the study does;
4. the table marks the step each metric would keep (from the validation split's numbers).

Corpora: ``demo`` (the constitution; task: article -> Part) and ``spdx15`` (a seeded 15% of the SPDX
licences, ~121k training tokens, so that 10 minutes are ~40 passes; task: licence -> OSI-approved, on
all 728 licences).

    python benchmarks/keep_best_curve.py --corpus demo --seed 2          # ~20 minutes on 2 cores
    python benchmarks/keep_best_curve.py --quick                           # 1 minute of training
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import _cells

ROOT = _cells.ROOT
FOLDS = 5


def setup(name: str, base: Path) -> dict:
    """Corpus, the demo's tokenizer kind, probes and the labelled task of ``name`` (built once)."""
    import downstream

    from domainlm.corpus.prepare import prepare

    if name == "demo":
        corpus, task = _cells.study_corpus("demo", base), downstream.constitution_task()
    else:
        corpus, task = base / "corpus", downstream.spdx_task()
        if not (corpus / "documents.jsonl").is_file():
            rows = [json.loads(x) for x in _cells.spdx_path().read_text(encoding="utf-8").splitlines()]
            keep = [r for r in rows if int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 100 < 15]
            raw = downstream.write_jsonl(
                base / "raw" / "lic.jsonl", [{"text": r["text"], "id": r["id"]} for r in keep]
            )
            prepare([raw.parent], corpus)
    tok = _cells.study_tokenizer(corpus, base / "tok")
    labelled = downstream.write_jsonl(
        base / "labelled.jsonl", [{"text": r["text"], "label": r["label"]} for r in task]
    )
    probes = _cells.study_probes(name, corpus, tok, base)
    return {"corpus": corpus, "tokenizer": tok, "labelled": labelled, "probes": probes}


def worker_train(dump: Path, cli_args: list[str]) -> None:
    """`domainlm pretrain CLI_ARGS` whose every validation also saves its weights to DUMP/step-N."""
    from safetensors.torch import save_file

    import domainlm.pretrain.loop as loop
    from domainlm.cli import main
    from domainlm.pretrain.checkpoint import weights

    record = loop.record_validation

    def record_and_save(run, state, metrics, elapsed, report=True):
        record(run, state, metrics, elapsed, report)
        unique, aliases = weights(run.model)
        d = dump / f"step-{state.step:06d}"
        d.mkdir(parents=True, exist_ok=True)
        save_file(unique, str(d / "model.safetensors"))
        (d / "aliases.json").write_text(json.dumps(aliases))
        (d / "val.json").write_text(json.dumps({"step": state.step, "elapsed": elapsed} | metrics))

    loop.record_validation = record_and_save
    main(["pretrain", *cli_args])


def step_runs(run: Path, dump: Path, out: Path) -> list[Path]:
    """One run folder per saved step: the run's config, tokenizer, and ``model/`` with that step's weights."""
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM

    from domainlm.pretrain.checkpoint import load_weights

    model = AutoModelForMaskedLM.from_pretrained(str(run / "model"))  # each step's weights go into it
    dirs = []
    for d in sorted(dump.glob("step-*")):
        tgt = out / d.name
        dirs.append(tgt)
        if (tgt / "model" / "model.safetensors").is_file():
            continue
        shutil.rmtree(tgt, ignore_errors=True)
        tgt.mkdir(parents=True)
        shutil.copy(run / "config.yaml", tgt / "config.yaml")
        load_weights(
            model, (load_file(str(d / "model.safetensors")), json.loads((d / "aliases.json").read_text()))
        )
        model.save_pretrained(str(tgt / "model"))
        for f in (run / "model").iterdir():
            if "token" in f.name or f.name == "vocab.txt":
                shutil.copy(f, tgt / "model" / f.name)
        shutil.copytree(run / "tokenizer", tgt / "tokenizer")
        shutil.copy(d / "val.json", tgt / "val.json")
    return dirs


def _domainlm(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "domainlm.cli", *args], check=True)


def rows_of(dirs: list[Path]) -> list[dict]:
    rows = []
    for d in dirs:
        v, e = json.loads((d / "val.json").read_text()), json.loads((d / "eval.json").read_text())
        board = json.loads((d / "ft" / "metrics.json").read_text())["leaderboard"]
        f1 = {r["method"]: r["macro_f1"] for r in board}["frozen-mean"]
        rows.append({
            "step": v["step"], "minutes": v["elapsed"] / 60, "val_loss": v["loss"], "val_accuracy": v["accuracy"],
            "test_loss": e["loss"], "test_accuracy": e["accuracy"], "test_pppl_bits_per_char": e.get("pppl_bits_per_char"),
            "probe_top1": e.get("probe_top1"), "probe_top5": e.get("probe_top5"), "frozen_mean": f1,
        })  # fmt: skip
    picks = {m: kept_step(rows, m) for m in ("loss", "accuracy")}
    for r in rows:
        r["kept_by"] = [m for m, s in picks.items() if s == r["step"]]
    return rows


def kept_step(rows: list[dict], metric: str) -> int:
    """The step train.keep_best would keep by ``metric``: the loop's own comparison over its validations."""
    from domainlm.pretrain.loop import best_by

    best = None
    for r in rows:
        v = {"loss": r["val_loss"], "accuracy": r["val_accuracy"]}
        if r["step"] > 0 and (best is None or best_by(metric, v, best[1])):
            best = (r["step"], v)
    return best[0]


def table(rows: list[dict]) -> str:
    head = (
        "| minutes | step | val loss | val acc | test loss | test acc | test pseudo-LL bits/char | probe top-1 "
        "| probe top-5 | frozen-mean macro-F1 | kept by |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    return head + "".join(
        f"| {r['minutes']:.1f} | {r['step']:,} | {r['val_loss']:.3f} | {pct(r['val_accuracy'])} | "
        f"{r['test_loss']:.3f} | {r['test_accuracy']:.2%} | {r['test_pppl_bits_per_char'] or float('nan'):.3f} | "
        f"{pct(r['probe_top1'])} | {pct(r['probe_top5'])} | {r['frozen_mean']['mean']:.3f} ± "
        f"{r['frozen_mean']['std']:.3f} | {', '.join(r['kept_by'])} |\n"
        for r in rows
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="demo, 1 minute, validated every 20 s")
    ap.add_argument("--corpus", choices=("demo", "spdx15"), default="demo")
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-keep-best"), help="scratch folder")
    ap.add_argument("--worker-train", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker_train:
        return worker_train(Path(a.worker_train[0]), a.worker_train[1:])
    budget, every = ("1m", "20s") if a.quick else (a.budget, "1m")
    base = Path(a.work) / a.corpus
    data = setup(a.corpus, base)
    name = f"s{a.seed}-{budget}"
    run, dump = base / "runs" / name, base / f"dump-{name}"
    if not (run / "train_summary.json").is_file():
        shutil.rmtree(dump, ignore_errors=True)
        args = [str(data["corpus"]), "--tokenizer", str(data["tokenizer"]), "--preset", "modernbert-mini",
                "--budget", budget, "--name", name, "--runs-dir", str(base / "runs"), "--resume", "never",
                "--set", f"train.seed={a.seed}", "--set", f"train.eval_every={every}"]  # fmt: skip
        subprocess.run([sys.executable, __file__, "--worker-train", str(dump), *args], check=True)
    dirs = step_runs(run, dump, base / f"scored-{name}")
    if not all((d / "eval.json").is_file() for d in dirs):
        _domainlm(
            "evaluate",
            *map(str, dirs),
            "--split",
            "test",
            "--probes",
            str(data["probes"]),
            "--max-docs",
            "10",
        )
    for d in dirs:
        if not (d / "ft" / "metrics.json").is_file():
            _domainlm("finetune", str(d), str(data["labelled"]), "--methods", "frozen-mean",
                      "--folds", str(FOLDS), "-o", str(d / "ft"), "--leaderboard-only")  # fmt: skip
    rows = rows_of(dirs)
    (base / f"curve-{name}.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    pick = {m: next(r for r in rows if m in r["kept_by"]) for m in ("loss", "accuracy")}
    print(
        "RESULT "
        + " ".join(
            f"{a.corpus}_{name}_{m}_{k}={v:.4f}" if isinstance(v, float) else f"{a.corpus}_{name}_{m}_{k}={v}"
            for m, r in pick.items()
            for k, v in (
                ("step", r["step"]),
                ("test_accuracy", r["test_accuracy"]),
                ("frozen_mean", r["frozen_mean"]["mean"]),
            )  # fmt: skip
        )
    )


if __name__ == "__main__":
    main()
