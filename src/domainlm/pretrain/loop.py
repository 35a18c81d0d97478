"""pretrain: train a masked, ELECTRA or causal language model on a corpus within a wall-clock budget.

    domainlm pretrain CORPUS --preset bert-mini --objective mlm --budget 10m --name my-run
    torchrun --standalone --nproc-per-node=2 -m domainlm.cli pretrain CORPUS ...   # DDP (gloo on CPU, NCCL on GPUs)

One readable loop (DESIGN.md, decision 2). The loop owns the budget, the schedule (defined on the
fraction of the budget used, so a run stopped by time has cooled down), bf16 autocast, gradient
accumulation, evaluation, atomic checkpoints and progress. Objectives are loss modules
(objectives.py); data are deterministic blocks (data.py); checkpoints are atomic (checkpoint.py).

Exact resume: sample ``g`` of the run, its mask and its ELECTRA samples derive from (seed, g) only, and
step ``s`` reads samples ``s * global_batch ...``, so a run killed with SIGKILL and resumed from its
last checkpoint logs the same loss at every later step (with ``max_steps``/``max_tokens``; a pure time
budget's schedule follows the clock). SIGINT/SIGTERM save and exit cleanly; a non-finite loss stops the
run before the optimizer step; a failed save removes its staging folder and names the intact one.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domainlm import config as cfgmod
from domainlm.config import RunConfig, parse_duration
from domainlm.errors import UserError
from domainlm.reporting import Quiet, Reporter


@dataclass
class PretrainResult:
    run_dir: Path
    model_dir: Path
    steps: int
    tokens: int
    seconds: float
    tokens_per_s: float
    stopped_by: str
    validation: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


def pretrain(
    corpus: str | Path | None = None,
    tokenizer: str | Path | None = None,
    preset: str | None = None,
    objective: str | None = None,
    budget: str | None = None,
    max_steps: int | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
    runs_dir: str | Path | None = None,
    init_from: str | Path | None = None,
    seq_len: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    resume: str = "auto",
    reporter: Reporter | None = None,
) -> PretrainResult:
    """Resolve the run config (defaults < ``config`` YAML < ``overrides`` < flags) and train.

    Inputs: ``corpus`` (a `domainlm prepare` folder); ``objective`` mlm | electra | clm; a ``preset``
    (`domainlm pretrain --preset list`) or ``init_from`` (a local HF checkpoint); the budget as wall
    clock (``budget``) and/or ``max_steps`` / ``max_tokens``; ``overrides`` as dotted ``key=value``.
    ``resume``: auto (continue from the newest valid checkpoint), never, must.

    Data-parallel training (DDP) on several processes or machines: start the same command with
    torchrun; each process takes its own rows of every global batch (``batch_size`` rows each), only
    rank 0 writes files, and the result equals one process with ``nproc x batch_size`` rows::

        torchrun --standalone --nproc-per-node=2 -m domainlm.cli pretrain corpus/ --preset bert-mini \
            --batch-size 16 --budget 1h --set speed.threads=1

    On a CPU the processes talk through gloo; where torch sees CUDA GPUs each process takes
    ``cuda:LOCAL_RANK`` and NCCL (``speed.device``: auto | cpu | cuda). Multi-node: torchrun's
    --nnodes/--rdzv-endpoint.

    Example::

        pretrain("corpus/", preset="bert-small", objective="mlm", budget="2h", name="legal")
    """
    if preset == "list":
        raise UserError("--preset list only prints the presets", "Run `domainlm pretrain --preset list`")
    cfg = cfgmod.load(
        RunConfig,
        config,
        overrides,
        **{
            "corpus": str(corpus) if corpus else None,
            "tokenizer": str(tokenizer) if tokenizer else None,
            "model.preset": preset,
            "model.objective": objective,
            "model.init_from": str(init_from) if init_from else None,
            "train.budget": budget,
            "train.max_steps": max_steps,
            "train.max_tokens": max_tokens,
            "train.seq_len": seq_len,
            "train.batch_size": batch_size,
            "train.lr": lr,
            "name": name,
            "runs_dir": str(runs_dir) if runs_dir else None,
        },
    )
    return fit(cfg, resume=resume, reporter=reporter)


# ----------------------------------------------------------------------------------------------------
# setup: tokenizer, data, model


def _prepare_tokenizer(cfg: RunConfig, run_dir: Path, style: str, reporter: Reporter) -> Path:
    """The run's frozen tokenizer folder: copied from --tokenizer / --init-from, or trained here."""
    from domainlm.tokens.tokenizer import load_tokenizer, train_tokenizer

    dest = run_dir / "tokenizer"
    if (dest / "tokenizer.json").is_file():
        return dest
    # written to a staging folder and renamed, so a kill never leaves half a tokenizer behind
    staging = run_dir / ".tokenizer-staging"
    shutil.rmtree(staging, ignore_errors=True)
    if cfg.model.init_from:
        load_tokenizer(cfg.model.init_from).save_pretrained(str(staging))
    elif cfg.tokenizer:
        src = Path(cfg.tokenizer)
        load_tokenizer(src)  # validates
        shutil.copytree(src, staging)
    else:
        tc = cfg.tokenizer_train.model_copy(update={"style": style})
        reporter.message(
            f"training a {tc.kind} tokenizer ({tc.vocab_size} tokens, {style} style) on the corpus"
        )
        train_tokenizer(
            cfg.corpus,
            staging,
            kind=tc.kind,
            vocab_size=tc.vocab_size,
            lowercase=tc.lowercase,
            style=style,
            overrides=[f"min_frequency={tc.min_frequency}"],
        )
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def _build_model(cfg: RunConfig, tok, reporter: Reporter):
    """(model, family, objective). From a preset, or continued from a local HF checkpoint."""
    from domainlm.pretrain import presets

    objective = cfg.model.objective
    from domainlm.tokens.tokenizer import special_ids

    ids = special_ids(tok)
    if cfg.model.init_from:
        import torch
        import transformers

        if objective == "electra":
            raise UserError(
                "--init-from continues mlm or clm pretraining, not electra",
                "Use --objective mlm (or clm) with --init-from, or a preset for electra",
            )
        src = Path(cfg.model.init_from)
        if not (src / "config.json").is_file():
            raise UserError(
                f"--init-from '{src}' is not a Hugging Face model folder (no config.json)",
                "Point it at a folder saved with save_pretrained",
            )
        auto = {"mlm": transformers.AutoModelForMaskedLM, "clm": transformers.AutoModelForCausalLM}
        from domainlm.errors import resolve

        loader = resolve("objective for --init-from", objective, auto)
        model, info = loader.from_pretrained(
            str(src),
            output_loading_info=True,
            local_files_only=True,
            attn_implementation=cfg.speed.attention,
            dtype=torch.float32,
        )
        family = model.config.model_type
        missing = sorted(k for k in info.get("missing_keys", []) if "position_ids" not in k)
        if missing:
            reporter.message(
                f"{src}: {len(missing)} weights are not in the checkpoint and were initialised "
                f"(e.g. {missing[0]}): the {objective} head starts from scratch"
            )
        else:
            reporter.message(f"{src}: all weights loaded, including the {objective} head")
        if len(tok) > model.config.vocab_size:
            raise UserError(
                f"tokenizer has {len(tok)} tokens but the model {model.config.vocab_size}",
                "Use the checkpoint's own tokenizer (the default with --init-from)",
            )
        for attr in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if hasattr(model.config, attr):
                setattr(model.config, attr, cfg.model.dropout)
        with contextlib.suppress(Exception):
            for m in model.modules():
                if m.__class__.__name__ == "Dropout":
                    m.p = cfg.model.dropout
        return model, family, objective
    if objective not in presets.objectives_of(cfg.model.preset):
        raise UserError(
            f"preset '{cfg.model.preset}' does not train objective '{objective}'",
            f"Use one of: {', '.join(presets.objectives_of(cfg.model.preset))}, or another preset",
        )
    built = presets.build(
        cfg.model.preset,
        objective,
        len(tok),
        max(cfg.train.seq_len, 512),
        ids,
        cfg.model.dropout,
        cfg.speed.attention,
        cfg.model.overrides,
    )
    return built.model, built.family, objective


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in n.lower() or n.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(progress: float, peak: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up then linear decay to ``min_ratio * peak``, on progress in [0, 1] (budget used)."""
    p = min(max(progress, 0.0), 1.0)
    if warmup > 0 and p < warmup:
        return peak * p / warmup
    decay = (p - warmup) / max(1e-9, 1 - warmup)
    return peak * (min_ratio + (1 - min_ratio) * (1 - decay))


class _StopSignal:
    """SIGINT/SIGTERM set a flag; the loop saves and exits cleanly at the next step."""

    def __init__(self):
        self.caught: str | None = None
        self._old: dict = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.caught = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class _Dist:
    """The process group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (alone: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # we initialised the process group, so we destroy it
    device: Any = None  # torch.device this process trains on (collectives' tensors live there: NCCL)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes (fp64, so token counts stay exact)."""
        if not self.enabled:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def agree(self, reason: str | None) -> str | None:
        """Every process stops for the same reason when any one of them has one (rank 0 owns the clock)."""
        if not self.enabled:
            return reason
        import torch
        import torch.distributed as dist

        t = torch.tensor([_STOP_CODES.index(reason)], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return _STOP_CODES[int(t)]


_STOP_CODES = [None, "budget", "SIGINT", "SIGTERM", "max_tokens", "max_steps"]


def _init_distributed(device_setting: str = "auto") -> _Dist:
    """This process's device, and torchrun's process group when WORLD_SIZE > 1: NCCL when each process
    has a GPU (``cuda:LOCAL_RANK``), gloo between CPU processes."""
    import os

    from domainlm.machine import dist_backend, resolve_device

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting, local_rank)
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(device=device)
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(dist_backend(device))
    return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, owned, device)


# ----------------------------------------------------------------------------------------------------
# the loop


def fit(cfg: RunConfig, resume: str = "auto", reporter: Reporter | None = None) -> PretrainResult:
    """Train ``cfg`` to its budget; write the run folder; return the result.

    Under torchrun (``WORLD_SIZE`` > 1) every process runs this; rank 0 alone writes files.
    """
    from domainlm.pretrain.presets import with_recipe

    reporter = reporter or Quiet()
    cfg = with_recipe(cfg)  # the preset's measured lr / warm-up / masking rate, where the user set none
    if resume not in ("auto", "never", "must"):
        raise UserError(f"unknown resume mode '{resume}'", "Use auto, never or must")
    if not cfg.corpus:
        raise UserError(
            "no corpus given", "Pass the folder made by `domainlm prepare`: domainlm pretrain CORPUS"
        )
    corpus = Path(cfg.corpus)
    if not (corpus / "documents.jsonl").is_file():
        raise UserError(
            f"'{corpus}' is not a corpus folder (no documents.jsonl)", "Run `domainlm prepare` first"
        )
    if cfg.model.init_from and not (Path(cfg.model.init_from) / "config.json").is_file():
        raise UserError(
            f"--init-from '{cfg.model.init_from}' is not a Hugging Face model folder (no config.json)",
            "Point it at a folder saved with save_pretrained",
        )
    dist_ = _init_distributed(cfg.speed.device)
    if not dist_.main:
        reporter = Quiet()
    try:
        return _fit(cfg, resume, reporter, dist_)
    finally:
        reporter.finish()
        if dist_.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


def _fit(cfg: RunConfig, resume: str, reporter: Reporter, dist_: _Dist) -> PretrainResult:
    import torch

    from domainlm import machine
    from domainlm.pretrain import checkpoint
    from domainlm.pretrain.metrics import EVAL_SEED, lm_metrics
    from domainlm.pretrain.objectives import (
        IGNORE,
        CLMObjective,
        ElectraObjective,
        MaskSpec,
        MLMObjective,
        electra_metrics,
        mask_tokens,
        word_start_table,
        word_starts,
    )
    from domainlm.pretrain.presets import style_of
    from domainlm.tokens.blocks import Blocks, block_spec, separator_id
    from domainlm.tokens.encode import encode_split
    from domainlm.tokens.tokenizer import load_tokenizer

    corpus = Path(cfg.corpus)
    if not cfg.model.init_from:
        style_of(cfg.model.preset)  # unknown preset -> error listing the valid ones, before any work
    t_start = time.perf_counter()
    budget_s = parse_duration(cfg.train.budget)
    threads = cfg.speed.threads or max(1, machine.cores() // dist_.world)
    torch.set_num_threads(threads)
    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    metrics_path = run_dir / "metrics.jsonl"
    main = dist_.main

    style = "bert" if cfg.model.init_from else style_of(cfg.model.preset)
    if cfg.model.objective == "clm" and not cfg.model.init_from:
        style = "gpt"
    objective = cfg.model.objective

    def setup():
        tok_dir = _prepare_tokenizer(cfg, run_dir, style, reporter)
        tok = load_tokenizer(tok_dir)
        if objective in ("mlm", "electra") and tok.mask_token_id is None:
            raise UserError(
                f"tokenizer '{tok_dir}' has no mask token, needed for {objective}",
                "Train a BERT/RoBERTa-style tokenizer (domainlm tokenizer --style bert)",
            )
        sep = separator_id(objective, tok)
        reporter.message("encoding the corpus (cached after the first run)")
        return (
            tok,
            encode_split(corpus, tok_dir, "train", sep),
            encode_split(corpus, tok_dir, "validation", sep),
        )

    # rank 0 prepares the run folder, tokenizer and token cache; the others then read them
    if main:
        if resume == "never" and run_dir.exists():
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            metrics_path.unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        cfgmod.dump(cfg, run_dir / "config.yaml")
        tok, train_shard, val_shard = setup()
        dist_.barrier()
    else:
        dist_.barrier()
        tok, train_shard, val_shard = setup()
    if len(val_shard.tokens) < cfg.train.seq_len:
        val_shard = train_shard  # tiny corpora: still report something, and say so
        reporter.message("validation split is smaller than one block: evaluating on train blocks")

    torch.manual_seed(cfg.train.seed)
    # initialised on the CPU (the same weights on any device), then moved
    model, family, objective = _build_model(cfg, tok, reporter)
    device = dist_.device
    model.to(device)
    max_pos = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", 0
    )
    if family == "roberta":
        max_pos -= 2
    if cfg.train.seq_len > max_pos:
        raise UserError(
            f"train.seq_len {cfg.train.seq_len} exceeds the model's {max_pos} positions",
            f"Set train.seq_len <= {max_pos}",
        )
    model.train()
    spec = block_spec(objective, tok, cfg.train.seq_len)
    train_blocks = Blocks(train_shard, spec, cfg.train.seed, shuffle=True)
    val_blocks = Blocks(val_shard, spec, 0, shuffle=False)
    specials = [
        i
        for i in {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}
        if i is not None
    ]
    mask_spec = MaskSpec(
        tok.mask_token_id if tok.mask_token_id is not None else -1,
        len(tok),
        specials,
        cfg.train.mlm_probability,
        cfg.train.seed,
    )
    starts_table = word_start_table(tok) if cfg.train.whole_word_mask and objective != "clm" else None
    bf16 = machine.resolve_bf16(cfg.speed.bf16, device.type)
    # fused AdamW (one kernel over all parameters; CPU support since torch 2.4) saves memory passes
    opt = torch.optim.AdamW(
        _param_groups(model, cfg.train.weight_decay), lr=cfg.train.lr, betas=(0.9, 0.98), eps=1e-6, fused=True
    )
    step = tokens = 0
    elapsed_before = 0.0
    history: list[dict] = []
    if resume != "never":
        last = checkpoint.latest_valid(
            ckpt_dir,
            on_skip=lambda p: reporter.message(f"checkpoint {p.name} is incomplete or damaged: skipped"),
        )
        if last is None and resume == "must":
            raise UserError(
                f"no complete checkpoint in '{ckpt_dir}'", "Run without --resume must to start fresh"
            )
        if last is not None:
            try:
                state = checkpoint.load(last, model, opt, device)
            except (RuntimeError, KeyError, ValueError) as e:
                raise UserError(
                    f"checkpoint {last} does not match this run's model ({str(e)[:120]})",
                    "Use another --name, or --resume never to start this run over",
                ) from None
            step, tokens, elapsed_before = state["step"], state["tokens"], state["elapsed"]
            history = state.get("history", [])
            reporter.message(f"resumed from {last.name} (step {step}, {tokens:,} tokens)")
    if main:
        _truncate_metrics(metrics_path, step)  # rows logged after the checkpoint will be logged again

    if objective == "clm":
        obj = CLMObjective(model)
    elif objective == "electra":
        obj = ElectraObjective(model, cfg.speed.sparse_prediction, cfg.train.seed)
    else:
        obj = MLMObjective(model, family, cfg.speed.sparse_prediction)
    ddp = None
    train_obj = obj
    if dist_.enabled:
        ids_ = [device.index] if device.type == "cuda" else None
        ddp = train_obj = torch.nn.parallel.DistributedDataParallel(obj, device_ids=ids_)
    if cfg.speed.compile:
        train_obj = torch.compile(train_obj)

    B, L, A, W = cfg.train.batch_size, cfg.train.seq_len, cfg.train.grad_accum, dist_.world
    tokens_per_step = B * L * A * W

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def evaluate_now() -> dict:
        model.eval()
        with torch.no_grad(), autocast():
            if objective == "electra":
                m = electra_metrics(model, val_blocks, mask_spec, B * W, cfg.train.eval_batches, EVAL_SEED)
            else:  # rank 0 evaluates global batches: the same blocks as one process would
                m = lm_metrics(
                    model,
                    family,
                    objective,
                    val_blocks,
                    mask_spec,
                    B * W,
                    cfg.train.eval_batches,
                    sparse=cfg.speed.sparse_prediction,
                )
        model.train()
        return m

    def save_checkpoint() -> None:
        try:
            checkpoint.save(
                ckpt_dir,
                step,
                model,
                opt,
                _train_state(step, tokens, elapsed, history),
                cfg.train.keep_checkpoints,
            )
        except OSError as e:
            prev = checkpoint.latest_valid(ckpt_dir)
            where = (
                f"the previous checkpoint {prev.name} is intact" if prev else "no earlier checkpoint exists"
            )
            raise UserError(
                f"could not write the checkpoint of step {step} ({e.strerror or e}); {where}",
                "Free disk space (or fix permissions) and run again: it resumes",
            ) from None

    # the time reserved at the end for the final evaluation and save: measured, not guessed
    t0 = time.perf_counter()
    first_eval = evaluate_now() if main else {}
    eval_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    reserve_s = 1.5 * eval_s + 2.0 + 2e-8 * n_params * 40
    train_budget_s = max(1.0, budget_s - reserve_s - (time.perf_counter() - t_start))
    if step == 0 and main:
        history.append(
            {"step": 0, "tokens": 0, "elapsed": 0.0, **{f"val_{k}": v for k, v in first_eval.items()}}
        )
        _append_metrics(metrics_path, history[-1])

    def progress_of(elapsed: float) -> float:
        """Fraction of the budget used. With max_steps/max_tokens the schedule follows them exactly
        (deterministic, resumable); the time budget then only stops the run."""
        if cfg.train.max_steps:
            return step / cfg.train.max_steps
        if cfg.train.max_tokens:
            return tokens / cfg.train.max_tokens
        return elapsed / train_budget_s

    reporter.start(
        {
            "budget_s": budget_s,
            "params": n_params,
            "bf16": bf16,
            "threads": threads,
            "family": family,
            "objective": objective,
            "tokens_per_step": tokens_per_step,
            "device": str(device),
            "step": step,
            "max_steps": cfg.train.max_steps,
            "world_size": W,
        }
    )
    eval_every, ckpt_every = parse_duration(cfg.train.eval_every), parse_duration(cfg.train.checkpoint_every)
    log_every = cfg.train.log_every
    seg_start = time.perf_counter()
    last_eval = last_ckpt = time.perf_counter()
    win_t, win_tokens, win_loss, win_n = time.perf_counter(), 0, 0.0, 0
    elapsed = elapsed_before
    stopped_by = "budget"
    with _StopSignal() as stop:
        while True:
            elapsed = elapsed_before + time.perf_counter() - seg_start
            reason = None
            if cfg.train.max_steps and step >= cfg.train.max_steps:
                reason = "max_steps"
            elif cfg.train.max_tokens and tokens >= cfg.train.max_tokens:
                reason = "max_tokens"
            elif main and elapsed >= train_budget_s:
                reason = "budget"
            elif stop.caught:
                reason = stop.caught
            reason = dist_.agree(reason)
            if reason:
                stopped_by = reason
                break
            lr = lr_at(progress_of(elapsed), cfg.train.lr, cfg.train.warmup, cfg.train.min_lr_ratio)
            for group in opt.param_groups:
                group["lr"] = lr
            logged = [0.0, 0.0, 0.0]  # loss, and for ELECTRA generator and discriminator losses
            for micro in range(A):
                # this process's rows of the global micro-batch: one process with W*B rows sees the same
                first = (step * A + micro) * B * W + dist_.rank * B
                indices = list(range(first, first + B))
                ids = train_blocks.batch(indices)  # (B, L)
                # masks are drawn on the CPU (from seed and sample index), then the batch moves to the device
                if objective == "clm":
                    args: tuple = (ids.to(device),)
                    count = ids[:, 1:].numel()
                else:
                    starts = word_starts(ids, starts_table, specials) if starts_table is not None else None
                    inputs, labels = mask_tokens(ids, indices, mask_spec, starts)
                    count = int((labels != IGNORE).sum())
                    inputs, labels = inputs.to(device), labels.to(device)
                    args = (
                        (inputs, labels) if objective == "mlm" else (ids.to(device), inputs, labels, indices)
                    )
                # normalise by the global count of predicted tokens, so W processes == one process with
                # W times the batch (DDP averages gradients: hence the factor W). ELECTRA: per-process means.
                n_global = W if objective == "electra" else dist_.sum([count])[0]
                scale = 1.0 / (max(1.0, n_global) * A)
                sync = ddp.no_sync() if ddp is not None and micro < A - 1 else contextlib.nullcontext()
                with sync:
                    with autocast():
                        out = train_obj(*args)
                    loss_sum = out[0] if objective == "electra" else out
                    (loss_sum * (W * scale)).backward()
                logged[0] += loss_sum.item() * scale
                if objective == "electra":
                    logged[1] += out[1].item() / (W * A)
                    logged[2] += out[2].item() / (W * A)
            logged = dist_.sum(logged)
            loss_value = logged[0]
            if not math.isfinite(loss_value):
                last = checkpoint.latest_valid(ckpt_dir)
                where = (
                    f"the last good checkpoint {last.name} is intact"
                    if last
                    else "no checkpoint was written yet"
                )
                raise UserError(
                    f"loss became {loss_value} at step {step + 1}; training stopped and {where}",
                    "Lower train.lr or raise train.warmup, then run again (it resumes)",
                )
            if cfg.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens += tokens_per_step
            win_tokens += tokens_per_step
            win_loss += loss_value
            win_n += 1
            now = time.perf_counter()
            elapsed = elapsed_before + now - seg_start
            due = step % log_every == 0 if log_every else now - win_t >= 2.0
            if main and (due or step == cfg.train.max_steps):
                row = {
                    "step": step,
                    "tokens": tokens,
                    "elapsed": round(elapsed, 2),
                    "loss": win_loss / win_n,
                    "lr": lr,
                    "tokens_per_s": win_tokens / max(1e-9, now - win_t),
                    "progress": min(1.0, progress_of(elapsed)),
                }
                if objective == "electra":
                    row |= {"gen_loss": logged[1], "disc_loss": logged[2]}
                history.append(row)
                _append_metrics(metrics_path, row)
                reporter.step(row)
                win_t, win_tokens, win_loss, win_n = now, 0, 0.0, 0
            if main and now - last_eval >= eval_every:
                m = evaluate_now()
                row = {
                    "step": step,
                    "tokens": tokens,
                    "elapsed": round(elapsed, 2),
                    **{f"val_{k}": v for k, v in m.items()},
                }
                history.append(row)
                _append_metrics(metrics_path, row)
                reporter.step(row)
                last_eval = time.perf_counter()
            if main and time.perf_counter() - last_ckpt >= ckpt_every:
                save_checkpoint()
                last_ckpt = time.perf_counter()
        elapsed = elapsed_before + time.perf_counter() - seg_start
        if not main:
            dist_.barrier()  # rank 0 evaluates and saves; the others wait, then leave
            return PretrainResult(
                run_dir,
                run_dir / "model",
                step,
                tokens,
                time.perf_counter() - t_start,
                0.0,
                stopped_by,
                {},
                [],
            )
        if stopped_by in ("SIGINT", "SIGTERM"):
            reporter.message(f"{stopped_by}: saving at step {step}; run the same command again to resume")
        final = evaluate_now()
        row = {
            "step": step,
            "tokens": tokens,
            "elapsed": round(elapsed, 2),
            **{f"val_{k}": v for k, v in final.items()},
        }
        history.append(row)
        _append_metrics(metrics_path, row)
        reporter.step(row)
        save_checkpoint()
    model_dir = save_model(
        model,
        tok,
        run_dir,
        cfg,
        {"steps": step, "tokens": tokens, "seconds": elapsed, "validation": final, "stopped_by": stopped_by},
    )
    plot_losses(history, run_dir / "loss.png")
    seconds = time.perf_counter() - t_start
    train_rows = [h for h in history if "tokens_per_s" in h]
    tps = sum(h["tokens_per_s"] for h in train_rows) / len(train_rows) if train_rows else 0.0
    summary = {
        "format_version": 1,
        "steps": step,
        "tokens": tokens,
        "train_seconds": round(elapsed, 2),
        "tokens_per_s": round(tps, 1),
        "stopped_by": stopped_by,
        "validation": final,
        "bf16": bf16,
        "threads": threads,
        "device": str(device),
        "world_size": W,
        "parameters": n_params,
        "machine": machine.describe(),
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    dist_.barrier()
    return PretrainResult(run_dir, model_dir, step, tokens, seconds, tps, stopped_by, final, history)


def _train_state(step: int, tokens: int, elapsed: float, history: list[dict]) -> dict[str, Any]:
    return {"step": step, "tokens": tokens, "elapsed": elapsed, "history": history}


def _append_metrics(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, keep the metric rows up to the checkpoint's step (later ones will be logged again);
    a line cut short by a kill is dropped. Starting fresh (step 0) empties the file."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if step > 0 and isinstance(row, dict) and row.get("step", step + 1) <= step:
            keep.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(r + "\n" for r in keep), encoding="utf-8")
    tmp.replace(path)


def save_model(model, tok, run_dir: Path, cfg: RunConfig, summary: dict) -> Path:
    """Write ``run_dir/model``: HF weights (safetensors), tokenizer and a model card. ELECTRA: the
    discriminator is ``model/`` (ElectraForPreTraining), the generator ``generator/`` (ElectraForMaskedLM)."""
    from domainlm.modelcard import write_model_card
    from domainlm.pretrain.objectives import ElectraPair

    def write(net, out: Path, card: bool) -> Path:
        tmp = out.parent / f".{out.name}-staging"
        shutil.rmtree(tmp, ignore_errors=True)
        net.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        if card:
            write_model_card(tmp, cfg, summary)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        return out

    if isinstance(model, ElectraPair):
        write(model.generator, run_dir / "generator", card=False)
        return write(model.discriminator, run_dir / "model", card=True)
    return write(model, run_dir / "model", card=True)


def plot_losses(history: list[dict], path: Path) -> None:
    """Train loss and validation loss against tokens seen (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [(h["tokens"], h["loss"]) for h in history if "loss" in h]
    va = [(h["tokens"], h["val_loss"]) for h in history if "val_loss" in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    if tr:
        ax.plot(*zip(*tr, strict=True), label="train loss", lw=1)
    if va:
        ax.plot(*zip(*va, strict=True), "o-", label="validation loss", lw=1.5)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("cross-entropy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
