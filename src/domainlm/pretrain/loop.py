"""pretrain: train a masked, ELECTRA or causal language model on a corpus within a wall-clock budget.

    domainlm pretrain CORPUS --preset bert-mini --objective mlm --budget 10m --name my-run
    torchrun --standalone --nproc-per-node=2 -m domainlm.cli pretrain CORPUS ...   # DDP (gloo on CPU, NCCL on GPUs)

One readable loop (DESIGN.md, decision 2). The loop owns the budget, the schedule (defined on the
fraction of the budget used, so a run stopped by time has cooled down), bf16 autocast, gradient
accumulation, evaluation, atomic checkpoints and progress. ``fit`` reads top to bottom; each of its
blocks (data, model, optimizer, resume, validate, train step, log, checkpoint, finish) is a named
function above it. Objectives are resolved by name (objectives.OBJECTIVES) and seen only through the
``Objective`` protocol; data are deterministic blocks (tokens/blocks.py); the process group is
distributed.py; checkpoints are atomic (checkpoint.py).

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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm import config as cfgmod
from domainlm.config import RunConfig, parse_duration
from domainlm.errors import UserError, resolve
from domainlm.pretrain import distributed
from domainlm.pretrain.distributed import Dist, StopSignal
from domainlm.reporting import Quiet, Reporter

if TYPE_CHECKING:
    from domainlm.pretrain.objectives import Objective, Setup


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

    Inputs: ``corpus`` (a `domainlm prepare` folder); ``objective`` mlm | electra | clm | plm | span; a ``preset``
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
# what the blocks of the loop share


@dataclass
class State:
    """Where training stands; every checkpoint saves it, a resumed run starts from it."""

    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0  # seconds trained, summed over every process lifetime of the run
    history: list[dict] = field(default_factory=list)  # every metrics row so far
    # train.keep_best: the best validation so far by train.keep_best_metric (step, tokens, loss, metrics)
    # and its weights (checkpoint.weights), saved in every checkpoint
    best: dict | None = None
    best_weights: Any = None


@dataclass
class Run:
    """Everything set up once, block by block in ``fit``, then read by the loop's blocks."""

    cfg: RunConfig
    dist: Dist
    reporter: Reporter
    bf16: bool
    threads: int
    tok: Any = None
    train_blocks: Any = None
    val_blocks: Any = None
    model: Any = None
    family: str = ""
    objective: Objective | None = None
    opt: Any = None
    module: Any = None  # objective.module as trained: wrapped by DDP and/or torch.compile
    ddp: Any = None  # the DDP wrapper (None alone): its no_sync() skips the all-reduce of accumulation steps
    compiled: bool = False  # speed.compile: torch.compile runs in this process's first step
    mask_spec: Any = None  # the objective's masking: the loop sets its rate (train.mlm_probability_end)
    log: MetricsLog | None = None

    @property
    def ckpt_dir(self) -> Path:
        return self.cfg.run_dir / "checkpoints"

    @property
    def tokens_per_step(self) -> int:
        t = self.cfg.train
        return t.batch_size * t.seq_len * t.grad_accum * self.dist.world

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


class Clock:
    """Seconds trained: those before this process (from the checkpoint) plus those since ``start``."""

    def __init__(self, before: float):
        self.before, self.start = before, time.perf_counter()

    def elapsed(self, now: float | None = None) -> float:
        return self.before + (time.perf_counter() if now is None else now) - self.start


def _autocast(run: Run):
    import torch

    return (
        torch.autocast(run.dist.device.type, dtype=torch.bfloat16) if run.bf16 else contextlib.nullcontext()
    )


# ----------------------------------------------------------------------------------------------------
# inputs, data, model, optimizer, resume


def check_inputs(cfg: RunConfig, resume: str) -> type[Objective]:
    """Every check that needs no work, before any work; returns the objective's class."""
    from domainlm.pretrain.objectives import OBJECTIVES
    from domainlm.pretrain.presets import style_of

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
    from domainlm.tokens.tokenizer import checkpoint_dir

    if cfg.model.init_from and not (checkpoint_dir(cfg.model.init_from) / "config.json").is_file():
        raise UserError(
            f"--init-from '{cfg.model.init_from}' is not a Hugging Face model folder (no config.json)",
            "Point it at a folder saved with save_pretrained",
        )
    objective = resolve("objective", cfg.model.objective, OBJECTIVES)
    if not cfg.model.init_from:
        style_of(cfg.model.preset)  # unknown preset -> error listing the valid ones
    if cfg.train.tensorboard == "on" and not tensorboard_installed():
        raise UserError(
            "train.tensorboard=on but the tensorboard package is not installed",
            "pip install tensorboard, or set train.tensorboard=auto (or off)",
        )
    return objective


def setup_data(cfg: RunConfig, objective: type[Objective], resume: str, dist_: Dist, reporter: Reporter):
    """(tokenizer, train blocks, validation blocks). Rank 0 prepares the run folder, the tokenizer and
    the token cache; the other processes wait for it, then read them."""
    from domainlm.tokens.blocks import Blocks, block_spec

    if dist_.main:
        run_dir = cfg.run_dir
        if resume == "never" and run_dir.exists():
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        cfgmod.dump(cfg, run_dir / "config.yaml")
        tok, train_shard, val_shard = _encode(cfg, objective, reporter)
        dist_.barrier()
    else:
        dist_.barrier()
        tok, train_shard, val_shard = _encode(cfg, objective, reporter)
    if len(val_shard.tokens) < cfg.train.seq_len:
        val_shard = train_shard  # tiny corpora: still report something, and say so
        reporter.message("validation split is smaller than one block: evaluating on train blocks")
    spec = block_spec(objective.block_layout, tok, cfg.train.seq_len)
    return (
        tok,
        Blocks(train_shard, spec, cfg.train.seed, shuffle=True),
        Blocks(val_shard, spec, 0, shuffle=False),
    )


def _encode(cfg: RunConfig, objective: type[Objective], reporter: Reporter):
    """(tokenizer, train shard, validation shard): the run's tokenizer and the corpus encoded with it."""
    from domainlm.pretrain.presets import style_of
    from domainlm.tokens.blocks import separator_id
    from domainlm.tokens.encode import encode_split
    from domainlm.tokens.tokenizer import load_tokenizer

    style = "bert" if cfg.model.init_from else (objective.tokenizer_style or style_of(cfg.model.preset))
    tok_dir = _prepare_tokenizer(cfg, cfg.run_dir, style, reporter)
    tok = load_tokenizer(tok_dir)
    if objective.needs_mask_token and tok.mask_token_id is None:
        raise UserError(
            f"tokenizer '{tok_dir}' has no mask token, needed for {cfg.model.objective}",
            "Train a BERT/RoBERTa-style tokenizer (domainlm tokenizer --style bert)",
        )
    sep = separator_id(objective.block_layout, tok)
    reporter.message("encoding the corpus (cached after the first run)")
    corpus = Path(cfg.corpus)
    return tok, encode_split(corpus, tok_dir, "train", sep), encode_split(corpus, tok_dir, "validation", sep)


def _prepare_tokenizer(cfg: RunConfig, run_dir: Path, style: str, reporter: Reporter) -> Path:
    """The run's frozen tokenizer folder: copied from --tokenizer / --init-from, or trained here."""
    from domainlm.tokens.tokenizer import checkpoint_dir, load_tokenizer, train_tokenizer

    dest = run_dir / "tokenizer"
    if (dest / "tokenizer.json").is_file():
        return dest
    # written to a staging folder and renamed, so a kill never leaves half a tokenizer behind
    staging = run_dir / ".tokenizer-staging"
    shutil.rmtree(staging, ignore_errors=True)
    if cfg.model.init_from:
        load_tokenizer(checkpoint_dir(cfg.model.init_from)).save_pretrained(str(staging))
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


def setup_model(cfg: RunConfig, tok, objective: type[Objective], device, reporter: Reporter):
    """(model, family): built from the seed on the CPU (the same weights on any device), then moved."""
    import torch

    torch.manual_seed(cfg.train.seed)
    if cfg.model.init_from:
        model = _continued_model(cfg, tok, objective, reporter)
    else:
        model = _preset_model(cfg, tok)
    model.to(device)
    config = model.config
    max_pos = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 0
    if config.model_type == "roberta":
        max_pos -= 2  # RoBERTa offsets positions by padding_idx + 1 (fairseq legacy)
    if max_pos > 0 and cfg.train.seq_len > max_pos:  # XLNet, T5 and RNNs have no position table
        raise UserError(
            f"train.seq_len {cfg.train.seq_len} exceeds the model's {max_pos} positions",
            f"Set train.seq_len <= {max_pos}",
        )
    model.train()
    family = model.config.model_type if cfg.model.init_from else _family(cfg.model.preset)
    return model, family


def _family(preset: str) -> str:
    from domainlm.pretrain.presets import family_of

    return family_of(preset)


def _preset_model(cfg: RunConfig, tok):
    """A fresh model from a preset (``domainlm pretrain --preset list``)."""
    from domainlm.pretrain import presets
    from domainlm.tokens.tokenizer import special_ids

    objective = cfg.model.objective
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
        special_ids(tok),
        cfg.model.dropout,
        cfg.speed.attention,
        cfg.model.overrides,
    )
    return built.model


def _continued_model(cfg: RunConfig, tok, objective: type[Objective], reporter: Reporter):
    """A local HF checkpoint (``--init-from``), its missing head initialised, its dropout the run's."""
    import torch
    import transformers

    from domainlm.pretrain.objectives import OBJECTIVES
    from domainlm.tokens.tokenizer import checkpoint_dir

    name, src = cfg.model.objective, checkpoint_dir(cfg.model.init_from)
    if objective.auto_model is None:
        can = ", ".join(k for k, v in OBJECTIVES.items() if v.auto_model)
        raise UserError(
            f"--init-from continues {can} pretraining, not {name}",
            f"Use --objective {can.split(', ')[0]} with --init-from, or a preset for {name}",
        )
    model, info = getattr(transformers, objective.auto_model).from_pretrained(
        str(src),
        output_loading_info=True,
        local_files_only=True,
        attn_implementation=cfg.speed.attention,
        dtype=torch.float32,
    )
    missing = sorted(k for k in info.get("missing_keys", []) if "position_ids" not in k)
    if missing:
        reporter.message(
            f"{src}: {len(missing)} weights are not in the checkpoint and were initialised "
            f"(e.g. {missing[0]}): the {name} head starts from scratch"
        )
    else:
        reporter.message(f"{src}: all weights loaded, including the {name} head")
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
    return model


def objective_setup(cfg: RunConfig, tok, model, family: str) -> Setup:
    """What the objective is built from: the run's masking (from the tokenizer) and switches."""
    from domainlm.pretrain.objectives import MaskSpec, Setup, word_start_table

    specials = [
        i
        for i in {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}
        if i is not None
    ]
    mask_id = tok.mask_token_id if tok.mask_token_id is not None else -1
    spec = MaskSpec(mask_id, len(tok), specials, cfg.train.mlm_probability, cfg.train.seed)
    starts = word_start_table(tok) if cfg.train.whole_word_mask else None
    return Setup(model, family, spec, starts, cfg.speed.sparse_prediction, cfg.train.seed, tok)


def wrap_module(objective: Objective, cfg: RunConfig, dist_: Dist):
    """(module to train, DDP wrapper or None, compiled?): the objective's module under DDP and/or
    torch.compile (speed.compile: ``on`` compiles any model; ``auto`` only one with repeated layers)."""
    import torch

    ddp, module = None, objective.module
    if dist_.enabled:
        device = dist_.device
        ids = [device.index] if device.type == "cuda" else None
        ddp = module = torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)
    # auto also compiles a short budget when this machine has compiled the same model before (warm cache)
    warm = cfg.speed.compile == "auto" and compile_cache_warm(
        compile_key(cfg, objective.module, dist_.device)
    )  # (on/off: no key to look for)
    compiled = compile_wanted(cfg, dist_, warm=warm)
    if compiled:
        module, compiled = compile_blocks(module, whole=cfg.speed.compile == "on")
    return module, ddp, compiled


# speed.compile=auto compiles a budget of at least this many seconds. RESULTS.md (time_to_quality,
# compile; demo corpus): modernbert-mini's first compiled run on a machine spends ~15-40 s of its budget
# compiling, then each step is 12-22% shorter (per token it learns as eager does). At 3 minutes that is a
# draw or a small gain (58.8% over three cold cells against eager's 58.0% over four) and it fills the
# cache for every later run; at 2 it loses (50.9% against 52.7%). Later runs read the compile cache (~1-3
# s), and then a compiled run gains at any budget (2 minutes: 54.6% over eight seeds against 52.7%; 3:
# 60.0% over two), so auto also compiles any budget once this machine has compiled the same model and
# batch shape (compile_cache_warm).
AUTO_COMPILE_S = 180.0


def compile_wanted(cfg: RunConfig, dist_: Dist, warm: bool = False) -> bool:
    """speed.compile resolved: on / off, or auto = one CPU process whose only stop is a wall-clock budget,
    of AUTO_COMPILE_S or more, or of any length when the compile cache is ``warm`` for this model. A run
    that resumes decides as it did at the start, unless another run compiled the same model in between.
    (auto leaves GPUs and torchrun eager: compile has been measured on the CPU only.)"""
    mode, t = cfg.speed.compile, cfg.train
    if mode != "auto":
        return mode == "on"
    timed_only = t.max_steps is None and not t.max_tokens
    single_cpu = dist_.world == 1 and dist_.device.type == "cpu"
    return single_cpu and timed_only and (warm or parse_duration(t.budget) >= AUTO_COMPILE_S)


def compile_key(cfg: RunConfig, module, device) -> str:
    """What torch's compile cache holds code for: the torch and transformers versions, the device, the
    model's code and configuration (every module's class and the config's numbers, not its weights), the
    batch shape and the autocast.

    The configuration is read without its vocabulary (``layer_config``): only the repeated layers are
    compiled (compile_blocks), and they never see a token id, so a model of the same preset on another
    corpus's tokenizer reads the same cached code (measured: 2.5 s against 24.7 s cold, RESULTS.md,
    time_to_quality, "the compile cache across tokenizers")."""
    import hashlib
    import platform

    import torch
    import transformers

    model_cfg = getattr(getattr(module, "model", module), "config", None)
    parts = [
        f"torch {torch.__version__} transformers {transformers.__version__}",
        f"{platform.machine()} {device.type}",
        layer_config(model_cfg),
        ",".join(sorted({type(m).__qualname__ for m in module.modules()})),
        f"{cfg.train.batch_size}x{cfg.train.seq_len} bf16={cfg.speed.bf16} sparse={cfg.speed.sparse_prediction}",
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def layer_config(model_cfg) -> str:
    """A model configuration as JSON without what depends on the tokenizer: the vocabulary size and the
    special tokens' ids, which only the embeddings and the head (never compiled by ``auto``) read."""
    if not hasattr(model_cfg, "to_dict"):
        return ""
    d = model_cfg.to_dict()
    for sub in [d, *(v for v in d.values() if isinstance(v, dict))]:  # ELECTRA's generator, T5's parts
        for k in list(filter(_vocabulary_field, sub)):
            sub.pop(k)
    return json.dumps(d, sort_keys=True, default=str)


def _vocabulary_field(key) -> bool:
    return isinstance(key, str) and (key == "vocab_size" or key.endswith(("_token_id", "_token_ids")))


def _compiled_marker(key: str) -> Path:
    """A file beside torch's compile cache saying it holds this model's code. It lives inside the cache
    folder (TORCHINDUCTOR_CACHE_DIR, else the system's temporary folder), so it goes when the cache goes."""
    import os

    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir()) / "domainlm-compiled" / key


def compile_cache_warm(key: str) -> bool:
    """Has a compiled run of this key (compile_key) finished its first step on this machine?"""
    try:
        return _compiled_marker(key).is_file()
    except Exception:  # no inductor, or a cache folder that cannot be read: treat as cold
        return False


def note_compiled(key: str) -> None:
    """After a run's first compiled step: this machine's compile cache now holds the model's code."""
    with contextlib.suppress(OSError):
        marker = _compiled_marker(key)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")


def compile_blocks(module, whole: bool = True) -> tuple[Any, bool]:
    """torch.compile a model's repeated blocks in place (regional compilation), else the whole module
    (``whole``) or nothing -> (the module to call, compiled?).

    A transformer is a stack of identical layers: compiling one layer's code once and reusing it for
    the others cuts the cold compile several times against compiling the whole model (PyTorch's recipe
    "Reducing torch.compile cold start compilation time with regional compilation"), and leaves the
    embeddings, the sparse head (whose row count changes every step) and the loss eager. The blocks
    are the children of every ``nn.ModuleList`` of two or more modules of one class. Compiled in place,
    the parameter names, checkpoints and the saved model are unchanged. RESULTS.md (time_to_quality,
    compile) measures its cost at the start of a run and its gain per step.
    """
    import torch

    blocks, inside = [], set()
    for m in module.modules():  # outer lists first: a list inside a chosen block is compiled with it
        if isinstance(m, torch.nn.ModuleList) and len(m) > 1 and len({type(b) for b in m}) == 1:
            if id(m) not in inside:
                blocks += list(m)
                inside |= {id(x) for b in m for x in b.modules()}
    if not blocks:  # the LSTM/GRU baseline: compiled whole only when asked for (speed.compile=on)
        return (torch.compile(module), True) if whole else (module, False)
    for block in blocks:
        block.compile()
    return module, True


def resume_state(cfg: RunConfig, resume: str, model, opt, dist_: Dist, reporter: Reporter) -> State:
    """The newest valid checkpoint's counters, weights and optimizer state loaded; or a fresh state."""
    from domainlm.pretrain import checkpoint

    ckpt_dir = cfg.run_dir / "checkpoints"
    if resume == "never":
        return State()
    last = checkpoint.latest_valid(
        ckpt_dir, on_skip=lambda p: reporter.message(f"checkpoint {p.name} is incomplete or damaged: skipped")
    )
    if last is None and resume == "must":
        raise UserError(f"no complete checkpoint in '{ckpt_dir}'", "Run without --resume must to start fresh")
    if last is None:
        return State()
    try:
        saved = checkpoint.load(last, model, opt, dist_.device)
    except (RuntimeError, KeyError, ValueError) as e:
        raise UserError(
            f"checkpoint {last} does not match this run's model ({str(e)[:120]})",
            "Use another --name, or --resume never to start this run over",
        ) from None
    state = State(saved["step"], saved["tokens"], saved["elapsed"], saved.get("history", []))
    if saved.get("best"):
        state.best, state.best_weights = saved["best"], checkpoint.load_best(last)
    reporter.message(f"resumed from {last.name} (step {state.step}, {state.tokens:,} tokens)")
    return state


# ----------------------------------------------------------------------------------------------------
# schedule, stopping, validation, the train step, logging, checkpoints


def lr_at(progress: float, peak: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up then linear decay to ``min_ratio * peak``, on progress in [0, 1] (budget used)."""
    p = min(max(progress, 0.0), 1.0)
    if warmup > 0 and p < warmup:
        return peak * p / warmup
    decay = (p - warmup) / max(1e-9, 1 - warmup)
    return peak * (min_ratio + (1 - min_ratio) * (1 - decay))


def progress_of(run: Run, state: State, elapsed: float, train_budget_s: float) -> float:
    """Fraction of the budget used. With max_steps/max_tokens the schedule follows them exactly
    (deterministic, resumable); the time budget then only stops the run."""
    t = run.cfg.train
    if t.max_steps is not None:
        return state.step / max(1, t.max_steps)
    if t.max_tokens:
        return state.tokens / t.max_tokens
    return elapsed / train_budget_s


def mask_rate_at(progress: float, start: float, end: float | None) -> float:
    """The masking rate at ``progress`` in [0, 1]: ``start`` throughout, or linear from ``start`` to ``end``."""
    if end is None:
        return start
    p = min(max(progress, 0.0), 1.0)
    return start + (end - start) * p


def stop_reason(
    run: Run, state: State, elapsed: float, train_budget_s: float, stop: StopSignal
) -> str | None:
    """Why training stops now (None: it goes on); every process gets the same answer."""
    t, reason = run.cfg.train, None
    if t.max_steps is not None and state.step >= t.max_steps:
        reason = "max_steps"
    elif t.max_tokens and state.tokens >= t.max_tokens:
        reason = "max_tokens"
    elif run.dist.main and elapsed >= train_budget_s:
        reason = "budget"
    elif run.dist.main and t.patience and validations_since_best(state) >= t.patience:
        reason = "patience"
    elif stop.caught:
        reason = stop.caught
    return run.dist.agree(reason)


def validations_since_best(state: State) -> int:
    """train.patience: the periodic validations after the best one (0 before any)."""
    if state.best is None:
        return 0
    return sum(1 for h in state.history if "val_loss" in h and h["step"] > state.best["step"])


def reserve_seconds(t, eval_s: float, n_params: int) -> float:
    """The end of a wall-clock budget kept for the final evaluation and save (``train.reserve_*``)."""
    return (
        t.reserve_eval_factor * eval_s
        + t.reserve_fixed_s
        + t.reserve_s_per_byte * n_params * t.reserve_bytes_per_param
    )


def first_validation(run: Run, state: State, t_start: float) -> float:
    """Validate before training (rank 0): the step-0 row of a fresh run, and the measured time that
    the final evaluation will need. Returns the seconds of the budget left for training."""
    t0 = time.perf_counter()
    first = validate(run) if run.dist.main else {}
    reserve_s = reserve_seconds(run.cfg.train, time.perf_counter() - t0, run.n_params)
    train_budget_s = max(
        1.0, parse_duration(run.cfg.train.budget) - reserve_s - (time.perf_counter() - t_start)
    )
    if state.step == 0 and run.dist.main:
        record_validation(run, state, first, 0.0, report=False)
    return train_budget_s


def validate(run: Run) -> dict:
    """The objective's validation metrics on fixed masks (EVAL_SEED). Rank 0 evaluates global batches:
    the same blocks one process would."""
    import torch

    from domainlm.pretrain.metrics import EVAL_SEED

    t = run.cfg.train
    run.model.eval()
    # compiled blocks run eager here: no compile for the evaluation's shapes, the numbers of the saved model
    with torch.no_grad(), _autocast(run), torch.compiler.set_stance("force_eager"):
        m = run.objective.metrics(run.val_blocks, t.batch_size * run.dist.world, t.eval_batches, EVAL_SEED)
    run.model.train()
    return m


def record_validation(run: Run, state: State, metrics: dict, elapsed: float, report: bool = True) -> None:
    row = {"step": state.step, "tokens": state.tokens, "elapsed": round(elapsed, 2)}
    record(run, state, row | {f"val_{k}": v for k, v in metrics.items()}, report)


def keep_best_by(metric: str, objective: str) -> str:
    """train.keep_best_metric resolved for ``objective``: ``auto`` is the accuracy for a masked LM (what
    fill-mask and its embeddings gain from; measured, RESULTS.md) and the loss for every other objective."""
    if metric == "auto":
        return "accuracy" if objective == "mlm" else "loss"
    return metric


def by_accuracy(metric: str, *validations: dict) -> bool:
    """train.keep_best_metric (resolved by keep_best_by): whether ``validations`` are compared by masked
    accuracy (the setting says so and every one of them reports it) rather than by loss."""
    return metric == "accuracy" and all(v.get("accuracy") is not None for v in validations)


def best_by(metric: str, new: dict, best: dict) -> bool:
    """train.keep_best_metric: whether validation ``new`` beats ``best``. ``accuracy``: the higher masked
    accuracy, ties to the lower loss; the loss alone where either validation reports no accuracy."""
    if by_accuracy(metric, new, best):
        return (new["accuracy"], -new["loss"]) > (best["accuracy"], -best["loss"])
    return new["loss"] < best["loss"]


def note_best(run: Run, state: State, metrics: dict) -> None:
    """train.keep_best: remember this validation's weights if it is the best so far (rank 0), by
    train.keep_best_metric."""
    from domainlm.pretrain import checkpoint

    t, loss = run.cfg.train, metrics.get("loss")
    if not t.keep_best or loss is None or state.step == 0:
        return
    metric = keep_best_by(t.keep_best_metric, run.cfg.model.objective)
    if state.best is None or best_by(metric, metrics, state.best["metrics"]):
        state.best = {"step": state.step, "tokens": state.tokens, "loss": loss, "metrics": metrics}
        state.best_weights = checkpoint.weights(run.model)


def record(run: Run, state: State, row: dict, report: bool = True) -> None:
    """One metrics row: into the history, metrics.jsonl (+ TensorBoard) and the reporter (rank 0)."""
    state.history.append(row)
    run.log.write(row)
    if report:
        run.reporter.step(row)


# how the loop normalises an objective's loss (Objective.reduction): the divisor of a micro-batch's loss.
# DDP averages gradients over processes, so a loss divided by the global count, times the world size, is
# the gradient of one process holding the whole global batch.
REDUCTIONS = {
    "sum": lambda count, dist_: dist_.sum([count])[0],  # by the global count of predicted tokens
    "mean": lambda count, dist_: dist_.world,  # a per-process mean: averaged over the processes
}


def train_step(run: Run, state: State, lr: float) -> tuple[float, dict[str, float]]:
    """One optimizer step over ``grad_accum`` micro-batches -> (loss, stats) over the global batch.

    A non-finite loss stops the run before the step, naming the last good checkpoint.
    """
    import torch

    from domainlm.pretrain import checkpoint

    t, dist_, obj = run.cfg.train, run.dist, run.objective
    B, A, W = t.batch_size, t.grad_accum, dist_.world
    for group in run.opt.param_groups:
        group["lr"] = lr
    logged = [0.0] * (1 + len(obj.stats))  # the loss, then the objective's stats
    for micro in range(A):
        # this process's rows of the global micro-batch: one process with W*B rows sees the same
        first = (state.step * A + micro) * B * W + dist_.rank * B
        indices = list(range(first, first + B))
        # masks are drawn on the CPU (from seed and sample index), then the batch moves to the device
        batch = obj.batch(run.train_blocks.batch(indices), indices)  # from (B, L) ids
        scale = 1.0 / (max(1.0, resolve("reduction", obj.reduction, REDUCTIONS)(batch.count, dist_)) * A)
        batch = batch.to(dist_.device)
        sync = run.ddp.no_sync() if run.ddp is not None and micro < A - 1 else contextlib.nullcontext()
        with sync:
            with _autocast(run):
                loss_sum, stats = obj.loss(run.module, batch)
            (loss_sum * (W * scale)).backward()
        logged[0] += loss_sum.item() * scale
        for i, name in enumerate(obj.stats, 1):
            logged[i] += stats[name].item() / (W * A)
    logged = dist_.sum(logged)
    if not math.isfinite(logged[0]):
        last = checkpoint.latest_valid(run.ckpt_dir)
        where = f"the last good checkpoint {last.name} is intact" if last else "no checkpoint was written yet"
        raise UserError(
            f"loss became {logged[0]} at step {state.step + 1}; training stopped and {where}",
            "Lower train.lr or raise train.warmup, then run again (it resumes)",
        )
    if t.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), t.grad_clip)
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    state.step += 1
    state.tokens += run.tokens_per_step
    return logged[0], dict(zip(obj.stats, logged[1:], strict=True))


@dataclass
class Window:
    """The train steps since the last logged row: their mean loss and tokens/s go into the next one."""

    t: float
    tokens: int = 0
    loss: float = 0.0
    n: int = 0


def log_train(run: Run, state: State, window: Window, now: float, step_row: dict) -> Window:
    """Add the step to the window; when a row is due (every ``log_every`` steps, else every ~2 s), log
    the window's mean loss and tokens/s with ``step_row`` (lr, progress, the objective's stats)."""
    window.tokens += run.tokens_per_step
    window.loss += step_row.pop("loss")
    window.n += 1
    t = run.cfg.train
    due = state.step % t.log_every == 0 if t.log_every else now - window.t >= 2.0
    if not (run.dist.main and (due or state.step == t.max_steps)):
        return window
    row = {"step": state.step, "tokens": state.tokens, "elapsed": round(state.elapsed, 2)}
    row |= {"loss": window.loss / window.n, "lr": step_row.pop("lr")}
    row |= {"tokens_per_s": window.tokens / max(1e-9, now - window.t)} | step_row
    record(run, state, row)
    return Window(now)


def save_checkpoint(run: Run, state: State) -> None:
    """An atomic checkpoint of this step (rank 0); a failed write names the intact previous one."""
    from domainlm.pretrain import checkpoint

    ckpt_dir, train = run.ckpt_dir, run.cfg.train
    try:
        checkpoint.save(
            ckpt_dir,
            state.step,
            run.model,
            run.opt,
            _train_state(state),
            train.keep_checkpoints,
            best=state.best_weights if state.best else None,
        )
    except OSError as e:
        prev = checkpoint.latest_valid(ckpt_dir)
        where = f"the previous checkpoint {prev.name} is intact" if prev else "no earlier checkpoint exists"
        raise UserError(
            f"could not write the checkpoint of step {state.step} ({e.strerror or e}); {where}",
            "Free disk space (or fix permissions) and run again: it resumes",
        ) from None
    run.log.flush()  # the TensorBoard events up to this checkpoint are on disk, like metrics.jsonl


# ----------------------------------------------------------------------------------------------------
# finish


def finish_training(run: Run, state: State, stopped_by: str) -> dict:
    """Rank 0, at the end: the final validation row and the last checkpoint (signals still caught)."""
    if stopped_by in ("SIGINT", "SIGTERM"):
        run.reporter.message(
            f"{stopped_by}: saving at step {state.step}; run the same command again to resume"
        )
    final = validate(run)
    record_validation(run, state, final, state.elapsed)
    note_best(run, state, final)
    save_checkpoint(run, state)
    return final


def kept_message(metric: str, step: int, kept: dict, last_step: int, last: dict) -> str:
    """The line that says which step model/ holds, and by which measure (train.keep_best_metric)."""
    nan = float("nan")
    if by_accuracy(metric, kept, last):
        return (
            f"model/ holds step {step} (validation accuracy {kept['accuracy']:.1%}, loss {kept['loss']:.3f}), "
            f"the most accurate; the last step {last_step} had {last['accuracy']:.1%}, loss "
            f"{last.get('loss', nan):.3f} (train.keep_best=false keeps the last)"
        )
    return (
        f"model/ holds step {step} (validation loss {kept['loss']:.3f}), the lowest; the last step "
        f"{last_step} had {last.get('loss', nan):.3f} (train.keep_best=false keeps the last)"
    )


def save_run(run: Run, state: State, stopped_by: str, final: dict, t_start: float) -> PretrainResult:
    """Rank 0 writes model/ (HF layout + card), loss.png and train_summary.json; the others wait."""
    from domainlm import machine

    dist_, run_dir = run.dist, run.cfg.run_dir
    if not dist_.main:
        dist_.barrier()  # rank 0 evaluates and saves; the others wait, then leave
        seconds = time.perf_counter() - t_start
        return PretrainResult(run_dir, run_dir / "model", state.step, state.tokens, seconds, 0.0, stopped_by)
    summary = {"steps": state.step, "tokens": state.tokens, "seconds": state.elapsed}
    last, kept = final, None
    if state.best and state.best["step"] != state.step:
        # train.keep_best: a periodic validation beat the last step's; model/ ships those weights (the
        # checkpoint keeps the last step's, so a resume goes on from there)
        from domainlm.pretrain import checkpoint

        checkpoint.load_weights(run.model, state.best_weights)
        final, kept = state.best["metrics"], {k: state.best[k] for k in ("step", "tokens", "loss")}
        metric = keep_best_by(run.cfg.train.keep_best_metric, run.cfg.model.objective)
        run.reporter.message(kept_message(metric, kept["step"], final, state.step, last))
    model_dir = save_model(
        run.model, run.tok, run_dir, run.cfg, summary | {"validation": final, "stopped_by": stopped_by}
    )
    plot_losses(state.history, run_dir / "loss.png")
    seconds = time.perf_counter() - t_start
    train_rows = [h for h in state.history if "tokens_per_s" in h]
    tps = sum(h["tokens_per_s"] for h in train_rows) / len(train_rows) if train_rows else 0.0
    summary = {
        "format_version": 1,
        "steps": state.step,
        "tokens": state.tokens,
        "train_seconds": round(state.elapsed, 2),
        # the budget's wall clock used: from the run's start (after imports) to its model saved, setup,
        # compile, validations and save included; train.budget bounds it, train.reserve_* keep the end
        "wall_seconds": round(seconds, 2),
        "tokens_per_s": round(tps, 1),
        "stopped_by": stopped_by,
        "validation": final,  # of the weights in model/
        "kept_step": kept["step"] if kept else state.step,  # train.keep_best: the step model/ holds
        "last_validation": last,  # of the last step (the checkpoint's)
        "bf16": run.bf16,
        "compiled": run.compiled,
        "threads": run.threads,
        "device": str(dist_.device),
        "world_size": dist_.world,
        "parameters": run.n_params,
        "machine": machine.describe(),
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    dist_.barrier()
    return PretrainResult(
        run_dir, model_dir, state.step, state.tokens, seconds, tps, stopped_by, final, state.history
    )


# ----------------------------------------------------------------------------------------------------
# the loop


def fit(cfg: RunConfig, resume: str = "auto", reporter: Reporter | None = None) -> PretrainResult:
    """Train ``cfg`` to its budget; write the run folder; return the result.

    Under torchrun (``WORLD_SIZE`` > 1) every process runs this; rank 0 alone writes files.
    """
    import torch

    from domainlm import machine
    from domainlm.pretrain.optim import make_optimizer
    from domainlm.pretrain.presets import with_recipe

    cfg = with_recipe(cfg)  # the preset's measured lr / warm-up / masking rate, where the user set none
    t = cfg.train
    objective_cls = check_inputs(cfg, resume)
    with distributed.session(cfg.speed.device) as dist_, _reporting(reporter, dist_) as reporter:
        t_start = time.perf_counter()
        threads = cfg.speed.threads or max(1, machine.cores() // dist_.world)
        torch.set_num_threads(threads)
        run = Run(cfg, dist_, reporter, machine.resolve_bf16(cfg.speed.bf16, dist_.device.type), threads)
        # data: the run folder, its frozen tokenizer, and token blocks that are pure functions of (seed, g)
        run.tok, run.train_blocks, run.val_blocks = setup_data(cfg, objective_cls, resume, dist_, reporter)
        # model: from the preset or --init-from, built from the seed on the CPU, then moved to the device
        run.model, run.family = setup_model(cfg, run.tok, objective_cls, dist_.device, reporter)
        setup = objective_setup(cfg, run.tok, run.model, run.family)
        run.objective = objective_cls(setup)
        run.mask_spec = setup.mask_spec
        # optimizer: AdamW, no decay on biases and norms (or Muon on the hidden matrices: optim.py)
        run.opt = make_optimizer(run.model, cfg.train)
        # resume: the newest valid checkpoint's weights, optimizer state and counters (or a fresh start)
        state = resume_state(cfg, resume, run.model, run.opt, dist_, reporter)
        # after the load: DDP syncs from rank 0
        run.module, run.ddp, run.compiled = wrap_module(run.objective, cfg, dist_)
        run.log = MetricsLog(cfg.run_dir, state.step, cfg.train.tensorboard, dist_.main)
        # validate before training: the step-0 row, and the time the final evaluation will need measured
        train_budget_s = first_validation(run, state, t_start)
        reporter.start(start_info(run, state))
        clock, window = Clock(state.elapsed), Window(time.perf_counter())
        compiling = run.compiled  # torch.compile runs inside this process's first step
        last_eval = last_ckpt = time.perf_counter()
        with StopSignal() as stop:
            while True:
                # stop: at max_steps/max_tokens, at the end of the budget, or on SIGINT/SIGTERM
                elapsed = clock.elapsed()
                stopped_by = stop_reason(run, state, elapsed, train_budget_s, stop)
                if stopped_by:
                    break
                # train step, at the learning rate (and masking rate) of the fraction of the budget used
                done = progress_of(run, state, elapsed, train_budget_s)
                lr = lr_at(done, t.lr, t.warmup, t.min_lr_ratio)
                if t.mlm_probability_end is not None and run.mask_spec is not None:
                    run.mask_spec.probability = mask_rate_at(done, t.mlm_probability, t.mlm_probability_end)
                t_step = time.perf_counter()
                loss, stats = train_step(run, state, lr)
                now = time.perf_counter()
                if compiling:  # the compile is setup, as the model's build was: the budget pays for it,
                    # the schedule does not (a cold compile would otherwise spend the whole warm-up)
                    compiling, spent = False, now - t_step
                    note_compiled(compile_key(cfg, run.objective.module, dist_.device))
                    clock.start += spent
                    train_budget_s = max(1.0, train_budget_s - spent)
                state.elapsed = clock.elapsed(now)
                # log: a row of the window's mean loss and tokens/s when due
                progress = min(1.0, progress_of(run, state, state.elapsed, train_budget_s))
                step_row = {"loss": loss, "lr": lr, "progress": progress} | stats
                window = log_train(run, state, window, now, step_row)
                # validate: every train.eval_every of wall clock (rank 0)
                if dist_.main and now - last_eval >= parse_duration(cfg.train.eval_every):
                    metrics = validate(run)
                    record_validation(run, state, metrics, state.elapsed)
                    note_best(run, state, metrics)
                    last_eval = time.perf_counter()
                # checkpoint: every train.checkpoint_every of wall clock (rank 0), atomic
                if dist_.main and time.perf_counter() - last_ckpt >= parse_duration(
                    cfg.train.checkpoint_every
                ):
                    save_checkpoint(run, state)
                    last_ckpt = time.perf_counter()
            # finish: rank 0 validates and checkpoints the last step
            state.elapsed = clock.elapsed()
            final = finish_training(run, state, stopped_by) if dist_.main else {}
        # save: model/, the loss plot and train_summary.json (rank 0); the other processes wait
        run.log.close()
        return save_run(run, state, stopped_by, final, t_start)


def start_info(run: Run, state: State) -> dict:
    """What the reporter shows when training starts."""
    return {
        "budget_s": parse_duration(run.cfg.train.budget),
        "params": run.n_params,
        "bf16": run.bf16,
        "compiled": run.compiled,
        "threads": run.threads,
        "family": run.family,
        "objective": run.cfg.model.objective,
        "tokens_per_step": run.tokens_per_step,
        "device": str(run.dist.device),
        "step": state.step,
        "max_steps": run.cfg.train.max_steps,
        "world_size": run.dist.world,
    }


@contextlib.contextmanager
def _reporting(reporter: Reporter | None, dist_: Dist) -> Iterator[Reporter]:
    """The reporter of this process (rank 0 reports, the others are quiet), finished on every exit."""
    rep = (reporter or Quiet()) if dist_.main else Quiet()
    try:
        yield rep
    finally:
        rep.finish()


# ----------------------------------------------------------------------------------------------------
# metrics.jsonl and TensorBoard


def tensorboard_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


class MetricsLog:
    """Rank 0's metrics rows: ``metrics.jsonl``, and the same numbers as TensorBoard scalars in
    ``tensorboard/`` (torch's SummaryWriter) when ``train.tensorboard`` is on, or auto and installed.

    On resume the rows after the checkpoint's step are dropped from metrics.jsonl and purged from
    TensorBoard (``purge_step``): they are logged again. A fresh start (step 0) empties both.
    """

    def __init__(self, run_dir: Path, step: int, tensorboard: str, main: bool):
        self.path, self.main, self.writer = run_dir / "metrics.jsonl", main, None
        if not main:
            return
        _truncate_metrics(self.path, step)  # rows logged after the checkpoint will be logged again
        if tensorboard == "on" or (tensorboard == "auto" and tensorboard_installed()):
            from torch.utils.tensorboard import SummaryWriter

            events = run_dir / "tensorboard"
            if step == 0:
                shutil.rmtree(events, ignore_errors=True)
            self.writer = SummaryWriter(str(events), purge_step=step + 1 if step else None)

    def write(self, row: dict) -> None:
        _append_metrics(self.path, row)
        if self.writer is None:
            return
        for key, value in row.items():
            if (
                key in ("step", "tokens", "elapsed")
                or isinstance(value, bool)
                or not isinstance(value, int | float)
            ):
                continue
            tag = f"val/{key.removeprefix('val_')}" if key.startswith("val_") else f"train/{key}"
            self.writer.add_scalar(tag, value, row["step"])

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _train_state(state: State) -> dict[str, Any]:
    return {
        "step": state.step,
        "tokens": state.tokens,
        "elapsed": state.elapsed,
        "history": state.history,
        "best": state.best,
    }


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
    discriminator is ``model/`` (ElectraForPreTraining), the generator ``generator/`` (ElectraForMaskedLM).
    The RNN baseline is not a transformers model: rnn.save_rnn writes its own format and says so."""
    from domainlm.modelcard import write_model_card
    from domainlm.pretrain.objectives import ElectraPair
    from domainlm.pretrain.rnn import RNNLM, save_rnn

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

    if isinstance(model, RNNLM):
        return save_rnn(model, tok, run_dir / "model", cfg, summary)
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
