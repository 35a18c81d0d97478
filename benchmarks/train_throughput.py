"""Training throughput and quality: domainlm's loop vs transformers `Trainer` (BENCHMARKS.md).

    python benchmarks/train_throughput.py            # full: 10-minute quality runs, ~45 min in all
    python benchmarks/train_throughput.py --quick    # smoke: 1-minute budgets, ~10 min on 2 shared cores

Corpus: the 728 SPDX licenses + the Constitution of India, prepared by `domainlm prepare`; a 16k
WordPiece tokenizer trained on its train split. Shape: bert-small (6L/512H/8 heads, LEGAL-BERT-small),
sequence 128, batch 32, 2 threads. Baseline: `Trainer` + `DataCollatorForLanguageModeling`
(mlm_probability 0.15), fp32, data via `datasets` `map` + group_texts, the same architecture with
transformers' default dropout (0.1) and attention (sdpa), i.e. what a competent user would write.
domainlm runs its defaults (bf16 autocast if the CPU has it, sparse prediction, eager attention, no
dropout). A second MLM row trains modernbert-small (ModernBertForMaskedLM, the same 6L/512H width; the
Trainer keeps ModernBERT's default dropout, 0.0), both sides at 15% masking. CLM: gpt-small
(GPT2LMHeadModel) the same way.

Every measurement runs in its own child process (`--worker ...`), so peak RSS is per run and one run's
allocator state does not leak into the next; baseline and domainlm alternate (A B A B).

Reports: steady-state tokens/s (the first steps of each run excluded), peak RSS, MFU against a GEMM
peak measured here, the ratio; masked-token accuracy on held-out blocks with fixed masks (the same
`evaluate.lm_metrics` code for both models) after equal wall clock; bf16 vs fp32 final validation loss
at equal steps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEQ, BATCH, THREADS, VOCAB = 128, 32, 2, 16000


# ----------------------------------------------------------------------------------------------------
# setup (parent process)


def setup(work: Path) -> tuple[Path, Path]:
    """The corpus folder and the 16k WordPiece tokenizer (built once, reused)."""
    from domainlm.corpus.prepare import prepare
    from domainlm.datafiles import spdx_path
    from domainlm.demo import constitution_articles
    from domainlm.tokens.tokenizer import train_tokenizer

    corpus, tok = work / "corpus", work / "tokenizer-wp16k"
    if not (corpus / "documents.jsonl").is_file():
        raw = work / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        with (raw / "docs.jsonl").open("w", encoding="utf-8") as f:
            for line in spdx_path().read_text(encoding="utf-8").splitlines():
                f.write(json.dumps({"text": json.loads(line)["text"]}) + "\n")
            for row in constitution_articles():
                f.write(json.dumps({"text": row["text"]}) + "\n")
        prepare([raw], corpus, overrides=["dedup_near=false"])
    if not (tok / "tokenizer.json").is_file():
        train_tokenizer(corpus, tok, kind="wordpiece", vocab_size=VOCAB, style="bert")
    return corpus, tok


def gemm_peak() -> dict:
    """Best GFLOP/s of a 2048^3 matmul in fp32 and bf16 with THREADS threads."""
    import torch

    torch.set_num_threads(THREADS)
    out = {}
    n = 2048
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
        for _ in range(2):
            a @ b
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        out[name] = 2 * n**3 / best / 1e9
    return out


# ----------------------------------------------------------------------------------------------------
# workers (child processes): each prints one JSON line


def _val_blocks(corpus: Path, tok_dir: Path, objective: str):
    from domainlm.tokens.blocks import Blocks, block_spec, separator_id
    from domainlm.tokens.encode import encode_split
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_dir)
    shard = encode_split(corpus, tok_dir, "validation", separator_id(objective, tok))
    return tok, Blocks(shard, block_spec(objective, tok, SEQ), 0, shuffle=False)


def held_out(model, corpus: Path, tok_dir: Path, objective: str, family: str, n_batches: int) -> dict:
    """The same evaluation for both sides: fp32, dense logits, fixed masks (evaluate.EVAL_SEED)."""
    import torch

    from domainlm.pretrain.metrics import lm_metrics
    from domainlm.pretrain.objectives import MaskSpec

    tok, blocks = _val_blocks(corpus, tok_dir, objective)
    specials = [i for i in {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id} if i is not None]
    spec = MaskSpec(tok.mask_token_id if tok.mask_token_id is not None else -1, len(tok), specials, 0.15, 0)
    model.float().eval()
    with torch.no_grad():
        return lm_metrics(model, family, objective, blocks, spec, BATCH, n_batches, sparse=False)


def worker_trainer(a) -> dict:
    """transformers Trainer baseline: steady tokens/s, or a wall-clock-limited run then held-out eval."""
    import torch
    import transformers
    from datasets import Dataset

    from domainlm.corpus.documents import read_documents
    from domainlm.pretrain import presets
    from domainlm.tokens.tokenizer import load_tokenizer

    torch.set_num_threads(THREADS)
    transformers.logging.set_verbosity_error()
    tok = load_tokenizer(a.tokenizer)
    mlm = a.objective == "mlm"
    preset = a.preset or ("bert-small" if mlm else "gpt-small")
    family = presets.family_of(preset)
    ids = {"pad": tok.pad_token_id, "bos": tok.sep_token_id, "eos": tok.sep_token_id}
    ids |= {"cls": tok.cls_token_id, "sep": tok.sep_token_id}
    # the same architecture; the user keeps transformers' defaults for dropout (BERT/GPT-2 0.1,
    # ModernBERT 0.0) and attention (sdpa)
    dropout = 0.0 if family == "modernbert" else 0.1
    cfg = presets.make_config(preset, len(tok), 512, ids, dropout=dropout, attention="sdpa")
    torch.manual_seed(0)
    model = presets.model_class(family, a.objective)(cfg)

    texts = [d["text"] for d in read_documents(a.corpus, "train")]
    ds = Dataset.from_dict({"text": texts})
    ds = ds.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])

    def group_texts(batch):  # the run_mlm.py / run_clm.py recipe
        cat = {k: sum(batch[k], []) for k in batch}
        n = (len(cat["input_ids"]) // SEQ) * SEQ
        return {k: [v[i : i + SEQ] for i in range(0, n, SEQ)] for k, v in cat.items()}

    ds = ds.map(group_texts, batched=True)
    collator = transformers.DataCollatorForLanguageModeling(tok, mlm=mlm, mlm_probability=0.15)
    times: list[float] = []
    t_begin: list[float] = []

    class Clock(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            t_begin.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())
            if a.seconds and times[-1] - t_begin[0] >= a.seconds:
                control.should_training_stop = True

    steps = a.steps
    args = transformers.TrainingArguments(
        output_dir=str(Path(a.work) / "trainer-out"),
        per_device_train_batch_size=BATCH,
        max_steps=steps,
        learning_rate=a.lr,
        warmup_steps=0.06,
        weight_decay=0.01,
        max_grad_norm=1.0,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=ds, data_collator=collator, callbacks=[Clock()]
    )
    trainer.train()
    step_s = [t1 - t0 for t0, t1 in zip([t_begin[0], *times[:-1]], times, strict=True)]
    out = {
        "side": "trainer",
        "objective": a.objective,
        "step_s": step_s,
        "steps": len(step_s),
        "train_s": times[-1] - t_begin[0],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": sum(p.numel() for p in model.parameters()),
    }
    if a.seconds:
        out["eval"] = held_out(model, Path(a.corpus), Path(a.tokenizer), a.objective, family, a.eval_batches)
    return out


def worker_domainlm(a) -> dict:
    """domainlm's loop: steady tokens/s from per-step metric rows, or a budgeted run then held-out eval."""
    import torch
    import transformers

    from domainlm.pretrain.loop import pretrain

    torch.set_num_threads(THREADS)
    mlm = a.objective == "mlm"
    preset = a.preset or ("bert-small" if mlm else "gpt-small")
    sets = [
        f"speed.threads={THREADS}",
        f"speed.bf16={a.bf16}",
        f"speed.compile={a.speed_compile or 'off'}",  # a step count: auto would be off too
        "train.eval_batches=2",
        "train.eval_every=10h",
        "train.checkpoint_every=10h",
        f"train.lr={a.lr}",
        "train.warmup=0.06",
        "train.mlm_probability=0.15",  # the Trainer's rate, whatever the preset's recipe
        "train.log_every=1",
        f"train.seed={a.seed}",
    ]
    name = f"dl-{a.objective}-{a.tag}"
    t0 = time.perf_counter()
    res = pretrain(
        a.corpus,
        tokenizer=a.tokenizer,
        preset=preset,
        objective=a.objective,
        budget=f"{a.seconds}s" if a.seconds else "2h",
        max_steps=None if a.seconds else a.steps,
        name=name,
        runs_dir=Path(a.work) / "runs",
        seq_len=SEQ,
        batch_size=BATCH,
        overrides=sets,
        resume="never",
    )
    wall = time.perf_counter() - t0
    rows = [h for h in res.history if "loss" in h]
    tps = BATCH * SEQ
    out = {
        "side": "domainlm",
        "objective": a.objective,
        "step_s": [tps / r["tokens_per_s"] for r in rows],
        "steps": res.steps,
        "wall_s": wall,
        "train_s": res.history[-1]["elapsed"],
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_val_loss": res.validation.get("loss"),
    }
    if a.seconds or a.eval_batches:
        auto = transformers.AutoModelForMaskedLM if mlm else transformers.AutoModelForCausalLM
        model = auto.from_pretrained(str(res.model_dir), dtype=torch.float32)
        out["eval"] = held_out(
            model, Path(a.corpus), Path(a.tokenizer), a.objective, model.config.model_type, a.eval_batches
        )
    return out


# ----------------------------------------------------------------------------------------------------
# orchestration


def run_worker(side: str, work: Path, corpus: Path, tok: Path, **kw) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        side,
        "--work",
        str(work),
        "--corpus",
        str(corpus),
        "--tokenizer",
        str(tok),
    ]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(THREADS),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
        PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-6000:])
        raise SystemExit(f"worker {side} {kw} failed")
    return json.loads(p.stdout.strip().splitlines()[-1])


def steady_tps(res: dict, warm: int) -> float:
    """Tokens/s over the steps after the first ``warm`` (total tokens / total time)."""
    s = res["step_s"][warm:]
    return BATCH * SEQ * len(s) / sum(s)


def flops_per_token(params: dict, mlm: bool, sparse: bool) -> float:
    """Training FLOPs per input token actually executed: 6 x matmul weights (PaLM appendix B) + attention
    12 x layers x hidden x seq; with sparse prediction the MLM head runs on 15% of the positions."""
    L, H, V = params["layers"], params["hidden"], params["vocab"]
    body = L * (4 + params.get("ffn", 8)) * H * H  # QKV + output (4 H^2) + FFN (BERT 8 H^2, GeGLU 4.5 H^2)
    head = H * V + (H * H if mlm else 0)
    frac = 0.15 if (mlm and sparse) else 1.0
    return 6 * (body + head * frac) + 12 * L * H * SEQ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (CI smoke)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-train"), help="scratch folder")
    ap.add_argument("--skip-quality", action="store_true", help="throughput only")
    ap.add_argument(
        "--compiled",
        action="store_true",
        help="domainlm's side with speed.compile=on (its layers compiled; the first steps, which compile, "
        "are among those dropped); the Trainer's side as always",
    )
    ap.add_argument(
        "--rounds", type=int, default=0, help="interleaved rounds per side (default 2 MLM / 1 CLM)"
    )
    ap.add_argument(
        "--bf16-steps", type=int, default=0, help="steps of the bf16 vs fp32 comparison (default 40)"
    )
    ap.add_argument("--bf16-only", action="store_true", help="only the bf16 vs fp32 comparison")
    ap.add_argument(
        "--bf16-seeds", type=int, default=1, help="seeds of the bf16 vs fp32 comparison (a pair each)"
    )
    ap.add_argument(
        "--quality-seconds", type=float, default=None, help="equal wall clock (default 600, quick 60)"
    )
    ap.add_argument(
        "--quality-only",
        action="store_true",
        help="only the equal-wall-clock comparison (the Trainer's schedule sized by a short speed run)",
    )
    ap.add_argument("--quality-preset", default="bert-small", help="architecture of the quality comparison")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    for k in ("corpus", "tokenizer", "objective", "tag", "preset", "bf16", "speed_compile"):
        ap.add_argument(f"--{k.replace('_', '-')}", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--eval-batches", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument(
        "--lr",
        type=float,
        default=1e-3,
        help="peak learning rate of the quality and bf16/fp32 runs (both sides)",
    )
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = {"trainer": worker_trainer, "domainlm": worker_domainlm}[a.worker]
        print(json.dumps(fn(a)))
        return

    import platform

    import torch

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus, tok = setup(work)
    peak = gemm_peak()
    print(
        f"GEMM peak ({THREADS} threads): fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s",
        flush=True,
    )
    q = a.quick
    # the machine is 2 shared cores and bert-small steps take seconds: few steps, the first ones dropped
    # row -> (objective, preset): ModernBERT beside bert-small at the same 6L/512H width
    cases = {
        "mlm": ("mlm", "bert-small"),
        "mlm-modernbert": ("mlm", "modernbert-small"),
        "clm": ("clm", "gpt-small"),
    }
    steps = {"mlm": 4 if q else 6, "mlm-modernbert": 4 if q else 6, "clm": 3 if q else 4}
    rounds = {
        "mlm": a.rounds or (1 if q else 2),
        "mlm-modernbert": a.rounds or (1 if q else 2),
        "clm": a.rounds or 1,
    }
    warm = 1 if q else 2
    quality_s = a.quality_seconds or (60 if q else 600)
    bf16_steps = a.bf16_steps or (20 if q else 40)
    from domainlm.machine import has_fast_bf16
    from domainlm.tokens.tokenizer import load_tokenizer

    vocab = len(load_tokenizer(tok))
    shapes = {
        "mlm": {"layers": 6, "hidden": 512, "vocab": vocab},
        "mlm-modernbert": {"layers": 6, "hidden": 512, "vocab": vocab, "ffn": 4.5},  # GeGLU 3H in, 1.5H out
        "clm": {"layers": 6, "hidden": 512, "vocab": vocab},
    }
    bf16_dl = has_fast_bf16()

    rows, ratios, medians = [], {}, {}
    nb = 10 if q else 30  # held-out batches of 32 blocks
    if a.quality_only:
        probe = run_worker("trainer", work, corpus, tok, objective="mlm", steps=4, preset=a.quality_preset)
        medians["mlm"] = {"trainer": steady_tps(probe, 1)}
        print(
            f"  Trainer {a.quality_preset} speed probe: {medians['mlm']['trainer']:,.0f} tokens/s", flush=True
        )
    for objective in () if (a.quality_only or a.bf16_only) else cases:
        res: dict[str, list[dict]] = {"trainer": [], "domainlm": []}
        for r in range(rounds[objective]):
            for side in ("trainer", "domainlm"):
                out = run_worker(
                    side,
                    work,
                    corpus,
                    tok,
                    objective=cases[objective][0],
                    preset=cases[objective][1],
                    steps=steps[objective],
                    tag=f"tp{r}-{cases[objective][1]}",
                    bf16="auto",
                    **({"speed_compile": "on"} if side == "domainlm" and a.compiled else {}),
                )
                res[side].append(out)
                print(f"  {objective} {side} round {r}: {steady_tps(out, warm):,.0f} tokens/s", flush=True)
        med = medians[objective] = {s: statistics.median(steady_tps(o, warm) for o in res[s]) for s in res}
        for side in ("trainer", "domainlm"):
            tps_all = [steady_tps(o, warm) for o in res[side]]
            fpt = flops_per_token(shapes[objective], cases[objective][0] == "mlm", side == "domainlm")
            dtype = "bf16" if (side == "domainlm" and bf16_dl) else "fp32"
            rows.append(
                {
                    "objective": objective,
                    "side": side,
                    "tokens_s": med[side],
                    "spread": f"{min(tps_all):,.0f}-{max(tps_all):,.0f}",
                    "rss_mb": max(o["rss_mb"] for o in res[side]),
                    "dtype": dtype,
                    "mfu": med[side] * fpt / (peak[dtype] * 1e9),
                    "ratio": med[side] / med["trainer"],
                }
            )
        ratios[f"{objective}_speedup{'_compiled' if a.compiled else ''}"] = med["domainlm"] / med["trainer"]

    if rows:
        print(
            "\n| objective | side | dtype | steady tokens/s (median) | spread | peak RSS MB | MFU vs GEMM peak | vs Trainer |"
        )
        print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['objective']} | {r['side']} | {r['dtype']} | {r['tokens_s']:,.0f} | {r['spread']} | "
            f"{r['rss_mb']:,.0f} | {r['mfu']:.1%} | {r['ratio']:.2f}x |"
        )

    if not a.skip_quality and not a.bf16_only:
        # equal wall clock: the Trainer gets max_steps from its measured speed, so its schedule also ends
        # (a competent user sizes the schedule to the time they have); a callback stops it at the budget
        base_tps = medians["mlm"]["trainer"]
        t_steps = max(10, int(quality_s * base_tps / (BATCH * SEQ)))
        qp = a.quality_preset
        tr = run_worker(
            "trainer",
            work,
            corpus,
            tok,
            objective="mlm",
            steps=t_steps,
            seconds=quality_s,
            eval_batches=nb,
            preset=qp,
            lr=a.lr,
        )
        dl = run_worker(
            "domainlm",
            work,
            corpus,
            tok,
            objective="mlm",
            seconds=quality_s,
            tag=f"quality-{qp}",
            bf16="auto",
            eval_batches=nb,
            preset=qp,
            lr=a.lr,
        )
        print(
            f"\nequal wall clock ({qp}, lr {a.lr:g}, {quality_s:.0f} s of training each), held-out masked tokens "
            f"({tr['eval']['masked_tokens']:,}, fixed masks):"
        )
        print("| side | steps | tokens seen | held-out loss | masked-token accuracy |")
        print("|---|---|---|---|---|")
        for name, o in (("trainer", tr), ("domainlm", dl)):
            print(
                f"| {name} | {o['steps']} | {o['steps'] * BATCH * SEQ:,} | {o['eval']['loss']:.3f} | "
                f"{o['eval']['accuracy']:.1%} |"
            )
        ratios["acc_trainer"] = round(tr["eval"]["accuracy"], 4)
        ratios["acc_domainlm"] = round(dl["eval"]["accuracy"], 4)

    want_bf16 = (not a.skip_quality and not a.quality_only) or a.bf16_only
    if want_bf16 and not bf16_dl:
        # without bf16 hardware torch emulates it (5x slower here, RESULTS.md "inference"): the comparison
        # would measure the emulation, and take most of the run
        print("\nbf16 vs fp32: skipped, this CPU has no bf16 (the GEMM probe and speed.bf16=auto agree)")
        ratios["bf16_loss_diff"] = "skipped"
    elif want_bf16:
        # bf16 vs fp32 at equal steps (bert-mini shape, same 16k vocabulary, same seed and data); with
        # --bf16-seeds N each seed is a pair, so the precision gap can be set against seed-to-seed spread
        seeds = list(range(a.bf16_seeds))
        losses: dict[str, list[float]] = {"bf16": [], "fp32": []}
        for seed in seeds:
            for tag, flag in (("bf16", "on"), ("fp32", "off")):
                r = run_worker(
                    "domainlm",
                    work,
                    corpus,
                    tok,
                    objective="mlm",
                    steps=bf16_steps,
                    tag=f"{tag}-s{seed}",
                    bf16=flag,
                    preset="bert-mini",
                    eval_batches=nb,
                    seed=seed,
                    lr=a.lr,
                )
                losses[tag].append(r["eval"]["loss"])
            b, f = losses["bf16"][-1], losses["fp32"][-1]
            print(f"  seed {seed}: bf16 {b:.4f}, fp32 {f:.4f}, difference {(b - f) / f:+.2%}", flush=True)
        mb, mf = statistics.mean(losses["bf16"]), statistics.mean(losses["fp32"])
        rel = abs(mb - mf) / mf
        spread = ""
        if len(seeds) > 1:
            spread = (
                f"; seed-to-seed sd: bf16 {statistics.stdev(losses['bf16']):.4f}, "
                f"fp32 {statistics.stdev(losses['fp32']):.4f}"
            )
        print(
            f"\nbf16 vs fp32 at {bf16_steps} steps (bert-mini, 16k vocab, lr {a.lr:g}, {len(seeds)} seed(s)), held-out loss "
            f"(fp32 eval, mean over seeds): bf16 {mb:.4f}, fp32 {mf:.4f}, difference {rel:.2%}{spread}"
        )
        ratios["bf16_loss_diff"] = round(rel, 4)

    print(
        f"\nmachine: {os.cpu_count()} cpus, {platform.processor() or platform.machine()}, torch {torch.__version__}; "
        f"GEMM peak fp32 {peak['fp32']:.0f} / bf16 {peak['bf16']:.0f} GFLOP/s"
    )
    print(
        "RESULT "
        + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in ratios.items())
    )


if __name__ == "__main__":
    main()
