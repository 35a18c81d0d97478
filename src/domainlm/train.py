"""pretrain: train a masked or causal language model on a corpus within a wall-clock budget.

    domainlm pretrain CORPUS --preset bert-mini --objective mlm --budget 10m --name my-run

One readable loop (DESIGN.md, decision 2). The loop owns the budget, the schedule (defined on the
fraction of the budget used, so a run stopped by time has cooled down), bf16 autocast, gradient
accumulation, evaluation, atomic checkpoints and progress. Objectives are loss functions
(objectives.py); data are deterministic blocks (data.py); checkpoints are atomic (checkpoint.py).
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
from typing import Any, Protocol

from . import config as cfgmod
from .config import RunConfig, parse_duration
from .errors import UserError


class Reporter(Protocol):
    """What the loop tells the outside world. The CLI draws a progress bar; the library is quiet."""

    def start(self, info: dict) -> None: ...
    def step(self, row: dict) -> None: ...
    def message(self, text: str) -> None: ...
    def finish(self) -> None: ...


class Quiet:
    def start(self, info: dict) -> None: ...
    def step(self, row: dict) -> None: ...
    def message(self, text: str) -> None: ...
    def finish(self) -> None: ...


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
    """Resolve the run config (defaults < ``config`` YAML < ``overrides`` < flags) and train."""
    if preset == "list":
        raise UserError("--preset list only prints the presets", "Run `domainlm pretrain --preset list`")
    cfg = cfgmod.load(
        RunConfig, config, overrides,
        **{"corpus": str(corpus) if corpus else None, "tokenizer": str(tokenizer) if tokenizer else None,
           "model.preset": preset, "model.objective": objective, "model.init_from": str(init_from) if init_from else None,
           "train.budget": budget, "train.max_steps": max_steps, "train.max_tokens": max_tokens,
           "train.seq_len": seq_len, "train.batch_size": batch_size, "train.lr": lr,
           "name": name, "runs_dir": str(runs_dir) if runs_dir else None},
    )
    return fit(cfg, resume=resume, reporter=reporter)


# ----------------------------------------------------------------------------------------------------
# setup: tokenizer, data, model


def _prepare_tokenizer(cfg: RunConfig, run_dir: Path, style: str, reporter: Reporter) -> Path:
    """The run's frozen tokenizer folder: copied from --tokenizer / --init-from, or trained here."""
    from .tokenizer import load_tokenizer, train_tokenizer

    dest = run_dir / "tokenizer"
    if (dest / "tokenizer.json").is_file():
        return dest
    if cfg.model.init_from:
        load_tokenizer(cfg.model.init_from).save_pretrained(str(dest))
    elif cfg.tokenizer:
        src = Path(cfg.tokenizer)
        load_tokenizer(src)  # validates
        shutil.copytree(src, dest)
    else:
        tc = cfg.tokenizer_train.model_copy(update={"style": style})
        reporter.message(f"training a {tc.kind} tokenizer ({tc.vocab_size} tokens, {style} style) on the corpus")
        train_tokenizer(cfg.corpus, dest, kind=tc.kind, vocab_size=tc.vocab_size, lowercase=tc.lowercase,
                        style=style, overrides=[f"min_frequency={tc.min_frequency}"])
    return dest


def special_ids(tok) -> dict[str, int | None]:
    return {"pad": tok.pad_token_id, "cls": tok.cls_token_id, "sep": tok.sep_token_id,
            "mask": tok.mask_token_id, "bos": tok.bos_token_id, "eos": tok.eos_token_id, "unk": tok.unk_token_id}


def _build_model(cfg: RunConfig, tok, reporter: Reporter):
    """(model, family, objective). From a preset, or continued from a local HF checkpoint."""
    from . import presets

    objective = cfg.model.objective
    ids = special_ids(tok)
    if cfg.model.init_from:
        import transformers

        src = Path(cfg.model.init_from)
        if not (src / "config.json").is_file():
            raise UserError(f"--init-from '{src}' is not a Hugging Face model folder (no config.json)",
                            "Point it at a folder saved with save_pretrained")
        auto = {"mlm": transformers.AutoModelForMaskedLM, "clm": transformers.AutoModelForCausalLM}
        from .errors import resolve

        loader = resolve("objective for --init-from", objective, auto)
        model, info = loader.from_pretrained(str(src), output_loading_info=True, local_files_only=True,
                                             attn_implementation=cfg.speed.attention)
        family = model.config.model_type
        missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
        if missing:
            reporter.message(f"{src.name}: {len(missing)} weights not in the checkpoint were initialised "
                             f"(e.g. {missing[0]}): the {objective} head starts from scratch")
        if len(tok) > model.config.vocab_size:
            raise UserError(f"tokenizer has {len(tok)} tokens but the model {model.config.vocab_size}",
                            "Use the checkpoint's own tokenizer (the default with --init-from)")
        for attr in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if hasattr(model.config, attr):
                setattr(model.config, attr, cfg.model.dropout)
        with contextlib.suppress(Exception):
            for m in model.modules():
                if m.__class__.__name__ == "Dropout":
                    m.p = cfg.model.dropout
        return model, family, objective
    if objective not in presets.objectives_of(cfg.model.preset):
        raise UserError(f"preset '{cfg.model.preset}' does not train objective '{objective}'",
                        f"Use one of: {', '.join(presets.objectives_of(cfg.model.preset))}, or another preset")
    built = presets.build(cfg.model.preset, objective, len(tok), max(cfg.train.seq_len, 512), ids,
                          cfg.model.dropout, cfg.speed.attention, cfg.model.overrides)
    return built.model, built.family, objective


def _block_spec(objective: str, tok, seq_len: int):
    from .data import BlockSpec

    if objective == "clm":
        return BlockSpec(seq_len, [], [])
    return BlockSpec(seq_len, [tok.cls_token_id], [tok.sep_token_id])


def _sep_id(objective: str, tok) -> int:
    sep = tok.sep_token_id if objective != "clm" else tok.eos_token_id
    if sep is None:
        sep = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    if sep is None:
        raise UserError("the tokenizer has no separator/end-of-text token", "Train it with `domainlm tokenizer`")
    return sep


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


# ----------------------------------------------------------------------------------------------------
# the loop


def fit(cfg: RunConfig, resume: str = "auto", reporter: Reporter | None = None) -> PretrainResult:
    """Train ``cfg`` to its budget; write the run folder; return the result."""
    import torch

    from . import checkpoint, machine
    from .data import Blocks
    from .encode import encode_split
    from .evaluate import lm_metrics
    from .objectives import MaskSpec, clm_loss, mask_tokens, mlm_loss
    from .presets import style_of
    from .tokenizer import load_tokenizer

    reporter = reporter or Quiet()
    if resume not in ("auto", "never", "must"):
        raise UserError(f"unknown resume mode '{resume}'", "Use auto, never or must")
    if not cfg.corpus:
        raise UserError("no corpus given", "Pass the folder made by `domainlm prepare`: domainlm pretrain CORPUS")
    corpus = Path(cfg.corpus)
    if not (corpus / "documents.jsonl").is_file():
        raise UserError(f"'{corpus}' is not a corpus folder (no documents.jsonl)", "Run `domainlm prepare` first")
    if not cfg.model.init_from:
        style_of(cfg.model.preset)  # unknown preset -> error listing the valid ones, before any work
    t_start = time.perf_counter()
    budget_s = parse_duration(cfg.train.budget)
    threads = cfg.speed.threads or machine.cores()
    torch.set_num_threads(threads)
    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    if resume == "never" and run_dir.exists():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        for f in ("metrics.jsonl",):
            (run_dir / f).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfgmod.dump(cfg, run_dir / "config.yaml")

    style = "bert" if cfg.model.init_from else style_of(cfg.model.preset)
    if cfg.model.objective == "clm" and not cfg.model.init_from:
        style = "gpt"
    tok_dir = _prepare_tokenizer(cfg, run_dir, style, reporter)
    tok = load_tokenizer(tok_dir)
    objective = cfg.model.objective
    if objective == "mlm" and tok.mask_token_id is None:
        raise UserError(f"tokenizer '{tok_dir}' has no mask token, needed for MLM",
                        "Train a BERT/RoBERTa-style tokenizer (domainlm tokenizer --style bert)")
    sep = _sep_id(objective, tok)
    reporter.message("encoding the corpus (cached after the first run)")
    train_shard = encode_split(corpus, tok_dir, "train", sep)
    val_shard = encode_split(corpus, tok_dir, "validation", sep)
    if len(val_shard.tokens) < cfg.train.seq_len:
        val_shard = train_shard  # tiny corpora: still report something, and say so
        reporter.message("validation split is smaller than one block: evaluating on train blocks")

    torch.manual_seed(cfg.train.seed)
    model, family, objective = _build_model(cfg, tok, reporter)
    max_pos = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 0)
    if family == "roberta":
        max_pos -= 2
    if cfg.train.seq_len > max_pos:
        raise UserError(f"train.seq_len {cfg.train.seq_len} exceeds the model's {max_pos} positions",
                        f"Set train.seq_len <= {max_pos}")
    model.train()
    spec = _block_spec(objective, tok, cfg.train.seq_len)
    train_blocks = Blocks(train_shard, spec, cfg.train.seed, shuffle=True)
    val_blocks = Blocks(val_shard, spec, 0, shuffle=False)
    specials = [i for i in {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.bos_token_id,
                            tok.eos_token_id} if i is not None]
    mask_spec = MaskSpec(tok.mask_token_id if tok.mask_token_id is not None else -1, len(tok), specials,
                         cfg.train.mlm_probability, cfg.train.seed)
    bf16 = machine.resolve_bf16(cfg.speed.bf16)
    opt = torch.optim.AdamW(_param_groups(model, cfg.train.weight_decay), lr=cfg.train.lr,
                            betas=(0.9, 0.98), eps=1e-6)
    step = tokens = 0
    elapsed_before = 0.0
    history: list[dict] = []
    if resume != "never":
        last = checkpoint.latest_valid(ckpt_dir)
        if last is None and resume == "must":
            raise UserError(f"no complete checkpoint in '{ckpt_dir}'", "Run without --resume must to start fresh")
        if last is not None:
            state = checkpoint.load(last, model, opt)
            step, tokens, elapsed_before = state["step"], state["tokens"], state["elapsed"]
            history = state.get("history", [])
            reporter.message(f"resumed from {last.name} (step {step}, {tokens:,} tokens)")
            _truncate_metrics(run_dir / "metrics.jsonl", step)
    fwd_model = torch.compile(model) if cfg.speed.compile else model

    B, L, A = cfg.train.batch_size, cfg.train.seq_len, cfg.train.grad_accum
    tokens_per_step = B * L * A

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def evaluate_now() -> dict:
        model.eval()
        with torch.no_grad(), autocast():
            m = lm_metrics(model, family, objective, val_blocks, mask_spec, B, cfg.train.eval_batches,
                           sparse=cfg.speed.sparse_prediction)
        model.train()
        return m

    # the time reserved at the end for the final evaluation and save: measured, not guessed
    t0 = time.perf_counter()
    first_eval = evaluate_now()
    eval_s = time.perf_counter() - t0
    reserve_s = 1.5 * eval_s + 2.0 + 2e-8 * sum(p.numel() for p in model.parameters()) * 40
    train_budget_s = max(1.0, budget_s - reserve_s - (time.perf_counter() - t_start))
    if step == 0:
        history.append({"step": 0, "tokens": 0, "elapsed": 0.0, **{f"val_{k}": v for k, v in first_eval.items()}})
        _append_metrics(run_dir / "metrics.jsonl", history[-1])

    def progress_of(elapsed: float) -> float:
        """Fraction of the budget used. With max_steps/max_tokens the schedule follows them exactly
        (deterministic, resumable); the time budget then only stops the run."""
        if cfg.train.max_steps:
            return step / cfg.train.max_steps
        if cfg.train.max_tokens:
            return tokens / cfg.train.max_tokens
        return elapsed / train_budget_s

    n_params = sum(p.numel() for p in model.parameters())
    reporter.start({"budget_s": budget_s, "params": n_params, "bf16": bf16, "threads": threads, "family": family,
                    "objective": objective, "tokens_per_step": tokens_per_step, "step": step,
                    "max_steps": cfg.train.max_steps})
    eval_every, ckpt_every = parse_duration(cfg.train.eval_every), parse_duration(cfg.train.checkpoint_every)
    seg_start = time.perf_counter()
    last_eval = last_ckpt = time.perf_counter()
    win_t, win_tokens, win_loss, win_n = time.perf_counter(), 0, 0.0, 0
    stopped_by = "budget"
    with _StopSignal() as stop:
        while True:
            elapsed = elapsed_before + time.perf_counter() - seg_start
            if cfg.train.max_steps and step >= cfg.train.max_steps:
                stopped_by = "max_steps"
                break
            if cfg.train.max_tokens and tokens >= cfg.train.max_tokens:
                stopped_by = "max_tokens"
                break
            if elapsed >= train_budget_s:
                stopped_by = "budget"
                break
            if stop.caught:
                stopped_by = stop.caught
                break
            lr = lr_at(progress_of(elapsed), cfg.train.lr, cfg.train.warmup, cfg.train.min_lr_ratio)
            for group in opt.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            for micro in range(A):
                first = (step * A + micro) * B
                indices = range(first, first + B)
                ids = train_blocks.batch(indices)  # (B, L)
                with autocast():
                    if objective == "clm":
                        loss, _ = clm_loss(fwd_model, ids)
                    else:
                        inputs, labels = mask_tokens(ids, indices, mask_spec)
                        loss, _ = mlm_loss(fwd_model, family, inputs, labels, cfg.speed.sparse_prediction)
                (loss / A).backward()
                loss_sum += loss.item() / A
            if not math.isfinite(loss_sum):
                last = checkpoint.latest_valid(ckpt_dir)
                where = f"the last good checkpoint {last} is intact" if last else "no checkpoint was written yet"
                raise UserError(f"loss became {loss_sum} at step {step + 1}; {where}",
                                "Lower train.lr or raise train.warmup, then run again (it resumes)")
            if cfg.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens += tokens_per_step
            win_tokens += tokens_per_step
            win_loss += loss_sum
            win_n += 1
            now = time.perf_counter()
            elapsed = elapsed_before + now - seg_start
            if now - win_t >= 2.0 or step == cfg.train.max_steps:
                row = {"step": step, "tokens": tokens, "elapsed": round(elapsed, 2), "loss": win_loss / win_n,
                       "lr": lr, "tokens_per_s": win_tokens / (now - win_t),
                       "progress": min(1.0, progress_of(elapsed))}
                history.append(row)
                _append_metrics(run_dir / "metrics.jsonl", row)
                reporter.step(row)
                win_t, win_tokens, win_loss, win_n = now, 0, 0.0, 0
            if now - last_eval >= eval_every:
                m = evaluate_now()
                row = {"step": step, "tokens": tokens, "elapsed": round(elapsed, 2), **{f"val_{k}": v for k, v in m.items()}}
                history.append(row)
                _append_metrics(run_dir / "metrics.jsonl", row)
                reporter.step(row)
                last_eval = time.perf_counter()
            if time.perf_counter() - last_ckpt >= ckpt_every:
                checkpoint.save(ckpt_dir, step, model, opt, _train_state(step, tokens, elapsed, history),
                                cfg.train.keep_checkpoints)
                last_ckpt = time.perf_counter()
        elapsed = elapsed_before + time.perf_counter() - seg_start
        final = evaluate_now()
        row = {"step": step, "tokens": tokens, "elapsed": round(elapsed, 2), **{f"val_{k}": v for k, v in final.items()}}
        history.append(row)
        _append_metrics(run_dir / "metrics.jsonl", row)
        reporter.step(row)
        checkpoint.save(ckpt_dir, step, model, opt, _train_state(step, tokens, elapsed, history),
                        cfg.train.keep_checkpoints)
    model_dir = save_model(model, tok, run_dir, cfg, {"steps": step, "tokens": tokens, "seconds": elapsed,
                                                      "validation": final, "stopped_by": stopped_by})
    plot_losses(history, run_dir / "loss.png")
    seconds = time.perf_counter() - t_start
    train_rows = [h for h in history if "tokens_per_s" in h]
    tps = sum(h["tokens_per_s"] for h in train_rows) / len(train_rows) if train_rows else 0.0
    reporter.finish()
    summary = {"format_version": 1, "steps": step, "tokens": tokens, "train_seconds": round(elapsed, 2),
               "tokens_per_s": round(tps, 1), "stopped_by": stopped_by, "validation": final, "bf16": bf16,
               "threads": threads, "parameters": n_params, "machine": machine.describe()}
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return PretrainResult(run_dir, model_dir, step, tokens, seconds, tps, stopped_by, final, history)


def _train_state(step: int, tokens: int, elapsed: float, history: list[dict]) -> dict[str, Any]:
    return {"step": step, "tokens": tokens, "elapsed": elapsed, "history": history}


def _append_metrics(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric rows logged after the checkpoint (they will be logged again)."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(r + "\n" for r in rows))


def save_model(model, tok, run_dir: Path, cfg: RunConfig, summary: dict) -> Path:
    """Write ``run_dir/model``: HF weights (safetensors), tokenizer and a model card."""
    from .modelcard import write_model_card

    out = run_dir / "model"
    tmp = run_dir / ".model-staging"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    write_model_card(tmp, cfg, summary)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


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
