"""The `domainlm` command line: one subcommand per stage, each a thin wrapper over a quiet function.

    domainlm prepare RAW -o corpus/        == domainlm.corpus.prepare.prepare(inputs=[...], output="corpus/")
    domainlm tokenizer corpus/ -o tok/     == domainlm.tokens.tokenizer.train_tokenizer(corpus="corpus/", ...)
    domainlm recommend corpus/ --budget 2h == domainlm.recommend.recommend(corpus="corpus/", budget="2h")
    domainlm pretrain corpus/ --budget 10m == domainlm.pretrain.loop.pretrain(corpus="corpus/", budget="10m")
    domainlm evaluate runs/NAME            == domainlm.evaluate.lm.evaluate(runs=["runs/NAME"])
    domainlm finetune runs/NAME data.csv   == domainlm.classify.finetune.finetune(model=..., data=...)
    domainlm export runs/NAME --format onnx-int8 == domainlm.export.export(run="runs/NAME", format=...)
    domainlm serve runs/NAME               == domainlm.serve.serve(run="runs/NAME")
    domainlm demo                          == domainlm.demo.demo()

Each option is declared once, as a pydantic Field in domainlm.config (its type, default, range and
description). ``SPECS`` below says, per command, which config keys are flags; the click options are
built from those Fields, so the help of a flag *is* its Field's description, and every call into the
library is by keyword. Adding a flag = adding the Field + one ``Flag("key")`` row.

Heavy imports (torch, transformers) happen inside the commands, so `domainlm --help` is instant.
Usage errors follow click (the usage line, the error, exit 2); a UserError prints one line and exits
2; anything else is a bug and says "internal error" (exit 1). `--debug` shows the traceback.
"""

from __future__ import annotations

import inspect
import os
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.table import Table

from domainlm import __version__
from domainlm import config as cfgmod
from domainlm.config import (
    DemoConfig,
    EvaluateConfig,
    ExportConfig,
    FinetuneConfig,
    FinetuneOptions,
    PrepareConfig,
    PrepareOptions,
    PretrainOptions,
    RecommendConfig,
    RecommendOptions,
    RunConfig,
    Section,
    TokenizerConfig,
    TokenizerOptions,
)
from domainlm.serve.limits import ServeConfig

# Output to a file or a pipe is not clamped to 80 columns (rich's default without a terminal): a table
# row is written whole, however wide, so `domainlm recommend ... | tee log` keeps every cell.
PIPE_WIDTH = 4096


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr): the terminal's width, or unlimited for a file or pipe."""
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=PIPE_WIDTH)


# ----------------------------------------------------------------------------------------------------
# the table: command -> config sections -> flags


@dataclass(frozen=True)
class Flag:
    """One flag: the config key it sets. Its type, default, range and help come from that key's Field."""

    key: str  # dotted key in the command's options (looked up first) or config section
    short: str | None = None  # "-o"
    name: str | None = None  # the spelling, when not --LAST-PART-OF-KEY ("--cors-origin")
    off: str | None = None  # a boolean's False spelling, when not --no-NAME ("--cased")
    param: str | None = None  # the library function's keyword, when not the key's last part
    cli_only: bool = False  # read by the CLI itself (a display choice), not passed to the library

    @property
    def flag(self) -> str:
        return self.name or "--" + self.key.rsplit(".", 1)[-1].replace("_", "-")

    @property
    def dest(self) -> str:
        return self.param or self.key.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Spec:
    """A command's settings: which sections hold them and which of their keys are flags.

    ``config`` is resolved by the library function (defaults < ``--config`` YAML < ``--set`` < flags):
    its flags default to None, "not given". ``options`` is resolved here (defaults < flags) and passed
    by keyword. ``library`` is the function the command calls ("module:function").
    """

    library: str
    flags: tuple[Flag, ...]
    config: type[Section] | None = None
    options: type[Section] | None = None
    yaml: bool = True  # --config/--set (when there is a config section)

    def section_of(self, flag: Flag) -> type[Section]:
        for section in (self.options, self.config):
            if section is not None and field_of(section, flag.key) is not None:
                return section
        raise KeyError(f"{flag.key} is in neither {self.options} nor {self.config}")


SPECS: dict[str, Spec] = {
    "prepare": Spec(
        "domainlm.corpus.prepare:prepare",
        (
            Flag("output", "-o"),
            Flag("text_field"),
            Flag("text_column"),
            Flag("group_by"),
            Flag("seed"),
            Flag("min_chars"),
            Flag("languages"),
            Flag("progress", cli_only=True),
            Flag("workers"),
        ),
        PrepareConfig,
        PrepareOptions,
    ),
    "tokenizer": Spec(
        "domainlm.tokens.tokenizer:train_tokenizer",
        (
            Flag("output", "-o"),
            Flag("kind"),
            Flag("vocab_size"),
            Flag("lowercase", off="--cased"),
            Flag("style"),
            Flag("report"),
        ),
        TokenizerConfig,
        TokenizerOptions,
    ),
    "recommend": Spec(
        "domainlm.recommend:recommend",
        (
            Flag("budget"),
            Flag("task"),
            Flag("labelled"),
            Flag("tokenizer"),
            Flag("init_from"),
            Flag("general"),
            Flag("candidates"),
            Flag("evidence"),
            Flag("probe_steps"),
            Flag("seq_len"),
            Flag("batch_size"),
            Flag("name"),
            Flag("screen"),
            Flag("output", "-o"),
        ),
        RecommendConfig,
        RecommendOptions,
        yaml=False,
    ),
    "pretrain": Spec(
        "domainlm.pretrain.loop:pretrain",
        (
            Flag("tokenizer"),
            Flag("model.preset"),
            Flag("model.objective"),
            Flag("train.budget"),
            Flag("train.max_steps"),
            Flag("train.max_tokens"),
            Flag("name"),
            Flag("runs_dir"),
            Flag("model.init_from"),
            Flag("train.seq_len"),
            Flag("train.batch_size"),
            Flag("train.lr"),
            Flag("resume"),
        ),
        RunConfig,
        PretrainOptions,
    ),
    "evaluate": Spec(
        "domainlm.evaluate.lm:evaluate",
        (
            Flag("split"),
            Flag("eval_batches"),
            Flag("baseline"),
            Flag("probes"),
            Flag("max_docs"),
            Flag("ngram_order"),
            Flag("ngram_tokens"),
            Flag("pppl_tokens"),
            Flag("seq_len"),
        ),
        options=EvaluateConfig,
    ),
    "finetune": Spec(
        "domainlm.classify.finetune:finetune",
        (
            Flag("text_field"),
            Flag("label_field"),
            Flag("multi_label", off="--single-label"),
            Flag("mode"),
            Flag("folds"),
            Flag("search", param="search_trials"),
            Flag("budget"),
            Flag("output", "-o"),
            Flag("methods"),
            Flag("save_model", off="--leaderboard-only"),
        ),
        FinetuneConfig,
        FinetuneOptions,
    ),
    "demo": Spec(
        "domainlm.demo:demo",
        (Flag("budget"), Flag("runs_dir"), Flag("name"), Flag("preset")),
        options=DemoConfig,
    ),
    "export": Spec(
        "domainlm.export:export",
        (Flag("format", "-f"), Flag("output", "-o"), Flag("eval_file"), Flag("tolerance")),
        options=ExportConfig,
    ),
    "serve": Spec(
        "domainlm.serve:serve",
        (
            Flag("host"),
            Flag("port"),
            Flag("onnx", off="--torch"),
            Flag("api_key_file"),
            Flag("cors_origins", name="--cors-origin"),
        ),
        ServeConfig,
    ),
}


def field_of(section: type[BaseModel], key: str) -> FieldInfo | None:
    """The Field of a dotted ``key`` in ``section`` (``train.budget`` -> TrainConfig.budget), or None."""
    head, _, rest = key.partition(".")
    f = section.model_fields.get(head)
    if f is None or not rest:
        return f
    return field_of(f.annotation, rest) if isinstance(f.annotation, type) else None


def scalar_type(annotation: Any) -> tuple[Any, bool]:
    """(scalar type, is a list) of a Field annotation: ``int | None`` -> int; ``list[str]`` -> (str, True)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return scalar_type(annotation)
    if origin is list:
        return typing.get_args(annotation)[0], True
    if origin is typing.Literal:
        return str, False  # the valid names are checked by pydantic or the library: one clear line
    return annotation, False


def _choices(annotation: Any) -> tuple[str, ...]:
    """The names of a ``Literal`` (possibly optional) annotation, for the help's metavar; else ()."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return next((_choices(a) for a in typing.get_args(annotation) if _choices(a)), ())


def _click_type(kind: Any, field: FieldInfo):
    """INT/FLOAT (a range when the Field has bounds, so click names the flag) or STRING."""
    if kind not in (int, float):
        return click.STRING
    bounds: dict[str, Any] = {}
    for m in field.metadata:
        for attr, (side, is_open) in {
            "ge": ("min", False),
            "gt": ("min", True),
            "le": ("max", False),
            "lt": ("max", True),
        }.items():
            if getattr(m, attr, None) is not None:
                bounds[side] = getattr(m, attr)
                bounds[f"{side}_open"] = is_open
    if not bounds:
        return click.INT if kind is int else click.FLOAT
    return (click.IntRange if kind is int else click.FloatRange)(**bounds)


def build_option(flag: Flag, field: FieldInfo, layered: bool) -> click.Option:
    """The click option of ``flag``: type, range and help from ``field``; default None when ``layered``
    (the library resolves it under the YAML and --set layers), else the Field's default."""
    if not field.description:
        raise TypeError(f"the Field behind {flag.flag} has no description: it is the flag's help")
    kind, is_list = scalar_type(field.annotation)
    default = None if layered else field.get_default(call_default_factory=True)
    decls = [flag.flag] + ([flag.short] if flag.short else [])
    if kind is bool:
        decls[0] = f"{flag.flag}/{flag.off or '--no-' + flag.flag[2:]}"
    choices = _choices(field.annotation)
    return click.Option(
        [*decls, flag.dest],
        type=None if kind is bool else _click_type(kind, field),
        metavar="[" + "|".join(choices) + "]" if choices else None,
        default=None if is_list else default,
        multiple=is_list,
        help=field.description + (" (repeatable, or comma-separated)" if is_list else ""),
        show_default=not layered and default not in (None, []),
    )


def _listed(value: Any) -> Any:
    """A repeatable option's values, comma-split; nothing given -> None."""
    if not isinstance(value, tuple):
        return value
    return [x.strip() for item in value for x in item.split(",") if x.strip()] or None


def keywords(spec: Spec, given: dict[str, Any]) -> dict[str, Any]:
    """The library keywords of the parsed flags ``given`` (dest -> value); options are validated and
    defaulted by their section, config flags stay None when not given (the library layers them)."""
    out: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    for f in spec.flags:
        value = _listed(given[f.dest])
        if spec.options is not None and spec.section_of(f) is spec.options:
            opts[f.key] = value
        else:
            out[f.dest] = value
    if spec.options is not None:
        resolved = cfgmod.load(spec.options, None, None, **opts)
        for f in spec.flags:
            if f.key in opts:
                out[f.dest] = resolved
                for part in f.key.split("."):
                    out[f.dest] = getattr(out[f.dest], part)
    return out


CONFIG_HELP = "YAML file of overrides (see configs/)"
SET_HELP = "override one key: --set train.lr=3e-4 (repeatable)"


def command(name: str):
    """Register the function below as subcommand ``name``, with the flags of ``SPECS[name]``; its
    docstring is the command's help.

    The function gets its click arguments by name and ``kw``: the library keywords (flags, plus
    ``config``/``overrides`` when the command layers YAML and --set).
    """
    spec = SPECS[name]

    def register(fn):
        arguments = list(reversed(getattr(fn, "__click_params__", [])))
        options = [
            build_option(f, field_of(spec.section_of(f), f.key), spec.section_of(f) is spec.config)
            for f in spec.flags
        ]
        if spec.config is not None and spec.yaml:
            options += [
                click.Option(["--config", "-c", "config"], default=None, help=CONFIG_HELP),
                click.Option(["--set", "overrides"], multiple=True, help=SET_HELP),
            ]

        def callback(**parsed):
            args = {a.name: parsed.pop(a.name) for a in arguments}
            kw = keywords(spec, parsed)
            if "overrides" in parsed:
                kw |= {"config": parsed["config"], "overrides": list(parsed["overrides"]) or None}
            return fn(**args, kw=kw)

        cli.add_command(
            click.Command(name, callback=callback, params=arguments + options, help=inspect.getdoc(fn))
        )
        return fn

    return register


# ----------------------------------------------------------------------------------------------------
# the commands: call the library by keyword, print its result


class _InOrder(click.Group):
    """Lists the commands in the order data moves through them (click sorts by name)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=_InOrder,
    name="domainlm",
    help="Train a language model on your own corpus on one CPU machine, end to end.",
    invoke_without_command=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["--help", "-h"]},
)
@click.version_option(
    __version__, "--version", message="domainlm %(version)s", help="print the version and exit"
)
@click.option("--debug", is_flag=True, help="show tracebacks")
def cli(debug: bool) -> None:
    """Train a language model on your own corpus on one CPU machine, end to end."""


app = cli  # the click group (tests: click.testing.CliRunner().invoke(app, [...]))


@command("prepare")
@click.argument("inputs", nargs=-1, required=True)
def prepare(inputs: tuple[str, ...], kw: dict) -> None:
    """Read, clean, deduplicate and split a folder of documents into a corpus.

    INPUTS: folders (recursive) or files to read."""

    from domainlm.corpus.prepare import prepare as run
    from domainlm.progress import RichReporter
    from domainlm.reporting import Quiet

    err = console(stderr=True)
    show = kw.pop("progress") and err.is_terminal
    res = run(inputs=list(inputs), **kw, reporter=RichReporter(err) if show else Quiet())
    _print_corpus(res)


def _print_corpus(res) -> None:
    out = console()
    s = res.stats
    t = Table(title=f"corpus: {res.output}")
    for col in ("split", "documents", "characters", "words", "≈tokens", "MB"):
        t.add_column(col, justify="right" if col != "split" else "left")
    for split in ("train", "validation", "test", "total"):

        def get(d: dict, sp: str = split) -> int:
            return sum(d.values()) if sp == "total" else d.get(sp, 0)

        t.add_row(
            split,
            f"{get(s['documents']):,}",
            f"{get(s['characters']):,}",
            f"{get(s['words']):,}",
            f"{get(s['estimated_tokens']):,}",
            f"{get(s['characters']) / 1e6:,.1f}",
        )
    out.print(t)
    out.print(
        f"{s['files']:,} files ({s['input_bytes'] / 2**20:,.1f} MB) read in {s['seconds']:.1f} s "
        f"({s['mb_per_s']:.2f} MB/s); {s['files_used']:,} used; "
        f"{s['duplicates_removed']:,} duplicates removed; {s['quarantined']:,} items quarantined "
        f"({res.output / 'quarantine.jsonl'})"
    )
    out.print("languages: " + ", ".join(f"{k} {v:,}" for k, v in s["languages"].items()))
    if s.get("dedup_index_full"):
        out.print(
            "note: the dedup index reached prepare.dedup_max_docs; later documents were checked, not indexed"
        )
    for reason, n in s["quarantine_reasons"].items():
        out.print(f"  {n:>6,}  {reason}", markup=False)


@command("tokenizer")
@click.argument("corpus")
def tokenizer(corpus: str, kw: dict) -> None:
    """Train a domain tokenizer on the corpus's train split (and report how it compares).

    CORPUS: corpus folder made by `domainlm prepare`."""

    from domainlm.tokens.tokenizer import train_tokenizer

    out = console()
    res = train_tokenizer(corpus=corpus, **kw)
    out.print(f"{res.kind} tokenizer, {res.vocab_size:,} tokens ({res.style} style) -> {res.output}")
    if not res.report:
        return
    r = res.report
    t = Table(
        title=f"tokenizers on the {r['split']} split ({r['documents']:,} documents, {r['words']:,} words)"
    )
    for col in ("tokenizer", "vocabulary", "tokens/word", "unknown", "chars/token"):
        t.add_column(col, justify="left" if col == "tokenizer" else "right")
    for name, m in r["tokenizers"].items():
        t.add_row(
            name,
            f"{m['vocab_size']:,}",
            f"{m['fertility']:.3f}",
            f"{m['unknown_rate']:.2%}",
            f"{m['chars_per_token']:.2f}",
        )
    out.print(t)
    if r["examples"]:
        names = list(r["tokenizers"])
        e = Table(title="domain words, as each tokenizer splits them")
        e.add_column("word")
        for name in names:
            e.add_column(name)
        for ex in r["examples"]:
            e.add_row(ex["word"], *[" ".join(ex[n]) for n in names])
        out.print(e)
    out.print(f"report: {res.output / 'report.json'}")


@command("pretrain")
@click.argument("corpus", required=False)
def pretrain(corpus: str | None, kw: dict) -> None:
    """Train a masked, ELECTRA or causal LM within a wall-clock budget (resumable; torchrun for DDP).

    CORPUS: corpus folder made by `domainlm prepare` (or `corpus` in --config)."""

    if kw["preset"] == "list":
        return _print_presets()
    from domainlm.pretrain.loop import pretrain as run
    from domainlm.progress import RichReporter

    res = run(corpus=corpus, **kw, reporter=RichReporter(console(stderr=True)))
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    out = console()
    out.print(
        f"trained {res.steps} steps, {res.tokens:,} tokens, {res.tokens_per_s:,.0f} tokens/s "
        f"(stopped by {res.stopped_by})"
    )
    out.print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in res.validation.items()))
    out.print(f"model: {res.model_dir}")
    if res.stopped_by in ("SIGINT", "SIGTERM"):
        out.print("interrupted and saved: run the same command again to resume")


def _print_presets() -> None:
    from rich import box

    from domainlm.pretrain.presets import describe

    t = Table(
        title="presets (parameters at a 16k vocabulary)",
        box=box.SIMPLE,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    for col in ("preset", "family", "objective", "layers", "hidden", "params", "generator"):
        t.add_column(
            col, no_wrap=True, justify="left" if col in ("preset", "family", "objective") else "right"
        )
    for r in describe():
        gen = f"{r['generator_parameters'] / 1e6:.1f}M" if r["generator_parameters"] else "-"
        t.add_row(
            r["preset"],
            r["family"],
            r["objectives"],
            str(r["layers"]),
            str(r["hidden"]),
            f"{r['parameters'] / 1e6:.1f}M",
            gen,
        )
    console().print(t)


@command("recommend")
@click.argument("corpus")
def recommend(corpus: str, kw: dict) -> None:
    """Measure this corpus and machine, pick the model and objective for the budget, write a run config.

    CORPUS: corpus folder made by `domainlm prepare`."""

    from domainlm.progress import RichReporter
    from domainlm.recommend import recommend as run

    out = console()
    rec = run(corpus=corpus, **kw, reporter=RichReporter(console(stderr=True)))
    t = Table(title=f"candidates for a {rec.budget} budget (measured on this machine)", padding=(0, 1))
    cols = ("", "model", "objective", "params", "tok/s", "tok in budget", "epochs", "tok/param")
    for col in cols:
        t.add_column(col, justify="left" if col in cols[:3] else "right", no_wrap=col in cols[:3])
    for c in rec.candidates:
        # "alt." is the rules of thumb's (ELECTRA, Clark et al. 2020); where the evidence decided, its
        # table ranks the measured families instead
        alt = c.alternative and rec.basis == "rules of thumb"
        mark = "chosen" if c is rec.choice else ("alt." if alt else "")
        t.add_row(
            mark,
            c.name,
            c.objective,
            f"{c.parameters / 1e6:.1f}M",
            f"{c.tokens_per_s:,.0f}",
            f"{c.budget_tokens / 1e6:,.1f}M",
            f"{c.epochs:.1f}",
            f"{c.tokens_per_param:.1f}",
        )
    out.print(t)
    if rec.lookup is not None:
        out.print(evidence_table(rec))
    if rec.screen is not None:
        out.print(screen_table(rec))
    out.print(
        f"corpus: {rec.corpus['words']:,} training words; training time in the budget ~{rec.train_s:,.0f} s"
    )
    from domainlm.recommend import untrained_name

    out.print(
        f"decided by: {rec.basis}"
        + (f"; the better buy: {rec.classical} (classical)" if rec.classical else "")
        + (
            f"; for frozen embeddings: {untrained_name(rec.untrained)}, no pretraining"
            if rec.untrained
            else ""
        )
    )
    for r in rec.reasons:
        out.print(f"- {r}", markup=False)
    out.print(f"config: {rec.config_path}\nnext: domainlm pretrain --config {rec.config_path}")


def evidence_table(rec) -> Table:
    """The measured study at the looked-up conditions: one row per family, best first."""
    look = rec.lookup
    t = Table(
        title=f"measured on the study corpus '{look.corpus}' at {look.budget_s / 60:.0f} min "
        f"({look.metric}, {'higher' if look.higher_is_better else 'lower'} is better)",
        padding=(0, 1),
    )
    # train CPU min: the pretraining run that made the model (not the study's evaluation and classifiers)
    for col in ("family", "kind", look.metric, "± (folds)", "train CPU min", "params"):
        t.add_column(col, justify="left" if col in ("family", "kind") else "right", no_wrap=True)
    from domainlm.recommend import untrained_name

    # a model the study scored without pretraining that beats every pretrained family joins the table
    extra = [rec.untrained] if rec.untrained is not None else []
    entries = sorted([*look.entries, *extra], key=lambda e: -e.value if look.higher_is_better else e.value)
    for e in entries:
        r, untrained = e.row, e is rec.untrained
        chosen = r.get("preset") == rec.choice.preset and not e.classical and not untrained
        t.add_row(
            untrained_name(e) if untrained else e.family + (" (chosen)" if chosen else ""),
            e.kind,
            f"{e.value:.3f}",
            f"{e.std:.3f} ({e.folds})" if e.std is not None and e.folds > 1 else "-",
            "0" if untrained else f"{r['pretrain_cpu_s'] / 60:.1f}" if r.get("pretrain_cpu_s") else "-",
            f"{r['parameters'] / 1e6:.1f}M" if r.get("parameters") else "-",
        )
    return t


def screen_table(rec) -> Table:
    """The screen on this corpus: each raced family's measured and projected bits/char, and the 5-gram."""
    s = rec.screen
    how = (
        f"up to {s.budget_s:.0f} s each, stopped when held-out loss stopped falling"
        if s.patience
        else f"{s.budget_s:.0f} s of training each"
    )
    t = Table(title=f"screened on this corpus ({how}; bits/char, lower is better)", padding=(0, 1))
    cols = ("model", "steps", "best after", "measured", "x study ratio", f"projected to {rec.budget}")
    for col in cols:
        t.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for p in rec.projections:
        mark = " (chosen)" if p.name == rec.choice.name and not rec.classical else ""
        best = s.best_s.get(p.name)
        t.add_row(
            p.name + mark,
            str(s.steps.get(p.name, "-")),
            f"{best:.0f} s" if best else "-",
            f"{p.screened:.3f}",
            f"{p.ratio:.2f}",
            f"{p.value:.3f}",
        )
    mark = " (the better buy)" if rec.classical == "ngram" else ""
    t.add_row("5-gram" + mark, "-", "-", f"{s.ngram:.3f}", "-", f"{s.ngram:.3f}")
    return t


@command("evaluate")
@click.argument("runs", nargs=-1, required=True)
def evaluate(runs: tuple[str, ...], kw: dict) -> None:
    """Evaluate runs on a held-out split; print one side-by-side table; write eval.json in each run.

    RUNS: run folders to evaluate."""

    from domainlm.evaluate.lm import evaluate as run
    from domainlm.evaluate.lm import side_by_side

    out = console()
    res = run(runs=list(runs), **kw)
    headers, rows = side_by_side(res)
    split = "/".join(sorted({r["split"] for r in res.values()}))  # as scored (a tiny validation: train)
    t = Table(title=f"evaluation ({split} split, fixed masks)")
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    out.print(t)
    for r in res.values():
        ng = r.get("baseline", {}).get("ngram")
        if ng:
            out.print(
                f"n-gram: {ng['library']}, order {ng['order']}, scored {ng['tokens']:,} {split} tokens "
                f"(KenLM's estimator needs Boost; see domainlm/evaluate/ngram.py)"
            )
            break
    out.print("eval.json written in " + ", ".join(res))


@command("finetune")
@click.argument("model")
@click.argument("data")
def finetune(model: str, data: str, kw: dict) -> None:
    """Compare classifier methods on the same folds (--methods), or fine-tune beside TF-IDF; ship the winner.

    MODEL: run folder (uses its model/), a local HF model folder, or `general` (the installed MiniLM). DATA: CSV, JSONL or Parquet file with a text and a label per row."""

    from domainlm.classify.finetune import TABLE_COLUMNS, describe_table
    from domainlm.classify.finetune import finetune as run
    from domainlm.progress import RichReporter

    out = console()
    res = run(model=model, data=data, **kw, reporter=RichReporter(console(stderr=True)))
    t = Table(title=f"classification, {res.folds} fold(s): mean ± std over folds (* = winner)")
    for col in TABLE_COLUMNS:
        t.add_column(col, justify="left" if col == "method" else "right")
    for row in describe_table(res.table):
        t.add_row(*row)
    out.print(t)
    if res.best_config:
        out.print(f"best configuration: {res.best_config} -> {res.output / 'best_config.json'}")
    if res.shipped:
        out.print(f"winner: {res.winner}; shipped: {res.shipped}")
        hf = (res.model_dir / "config.json").is_file()
        how = "transformers.pipeline('text-classification', model=...)" if hf else "domainlm serve / export"
        out.print(f"model: {res.model_dir}  (loads with {how})")
    else:
        out.print(f"winner: {res.winner}; no model refit or saved (--leaderboard-only)")
    out.print(
        f"report: {res.output / 'metrics.json'}, {res.output / 'leaderboard.png'}, {res.output / 'errors.jsonl'}, "
        f"{res.output / 'confusion.png'}"
    )


@command("demo")
def demo(kw: dict) -> None:
    """The whole job on the Constitution of India: prepare, tokenizer, pretrain, evaluate, fill-mask."""

    from domainlm.demo import answer_rank
    from domainlm.demo import demo as run
    from domainlm.progress import RichReporter

    out = console()
    res = run(**kw, reporter=RichReporter(console(stderr=True)))
    ev = res["eval"]
    out.print(
        f"\nvalidation masked-token accuracy {ev['accuracy']:.1%}, loss {ev['loss']:.3f} "
        f"({res['steps']} steps, {res['tokens_per_s']:,.0f} tokens/s); held-out cloze probes "
        f"top-1 {ev['probe_top1']:.0%}, top-5 {ev['probe_top5']:.0%}"
    )
    for ex in res["examples"]:
        rank = answer_rank(ex)
        verdict = "right" if rank == 1 else f"answer ranked {rank}" if rank else "missed"
        out.print(f"\n[bold]{ex['text']}[/bold]   (answer: {ex['answer']}; {verdict})")
        out.print("  before: " + ", ".join(f"{t} {p:.2f}" for t, p in ex["before"]))
        out.print("  after:  " + ", ".join(f"{t} {p:.2f}" for t, p in ex["after"]))
    right = res["examples_right"]
    out.print(
        f"\nheld-out sentences filled right: {right['top1']} of {right['shown']} at top-1, "
        f"{right['top5']} of {right['shown']} in the top 5"
    )
    if res["hint"]:
        out.print(f"\n{res['hint']}", markup=False)
    out.print(
        f"\nmodel folder: {res['model_dir']}  (loads with transformers.pipeline('fill-mask', model=...))"
    )


@command("export")
@click.argument("run")
def export(run: str, kw: dict) -> None:
    """Export a model: HF folder with a model card, ONNX (fp32/int8, checked on held-out data), or sentence-transformers.

    RUN: run folder, or a Hugging Face model folder."""

    from domainlm.export import export as run_export

    out = console()
    res = run_export(run=run, **kw)
    c = res.check
    if c:
        out.print(f"check on {c['windows']} windows of {c['examples']} held-out texts ({c['data']}):")
        lo, hi = c["agreement_ci95"]
        out.print(
            f"  top-1 agreement with torch {c['agreement']:.2f}% (95% {lo:.2f}-{hi:.2f}, "
            f"{c['counted']} predictions); max |logit difference| {c['max_abs_diff']:.4g}"
        )
        out.print(
            f"  {c['metric']}: torch {c['torch']:.2f}, ONNX {c['onnx']:.2f} (drop {c['metric_drop']:.2f} "
            f"± {c['metric_drop_ci95']:.2f} points, tolerance {kw['tolerance']})"
        )
        out.print(
            f"  latency per window (batch 16): torch {c['torch_ms_per_window']:.2f} ms, "
            f"ONNX {c['onnx_ms_per_window']:.2f} ms"
        )
        if "recipe" in c:
            tried = ", ".join(f"{t['recipe']} (drop {t['metric_drop']:.2f})" for t in c["recipes_tried"])
            out.print(f"  int8 recipe: {c['recipe_text']}; tried: {tried}")
    out.print(f"{res.format} export of a {res.task} model -> {res.output} ({', '.join(res.files)})")


@command("serve")
@click.argument("run")
def serve(run: str, kw: dict) -> None:
    """Serve a model over HTTP (FastAPI + uvicorn) with limits, an optional API key and /metrics.

    RUN: run folder, HF model folder or ONNX export folder."""

    from domainlm.progress import RichReporter
    from domainlm.serve import serve as run_serve

    err = console(stderr=True)
    res = run_serve(run=run, **kw, reporter=RichReporter(err))
    err.print(f"stopped ({res['stopped_by']})")


def main(argv: list[str] | None = None) -> None:
    """Entry point: click's usage errors (exit 2), UserError as one line (exit 2), bugs as "internal error"."""
    from domainlm.errors import UserError

    # transformers/hub progress bars would interleave with ours
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("DOMAINLM_DEBUG") == "1"
    try:
        cli.main(args, prog_name="domainlm", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as e:  # a usage error: click's usage line, the error, its hint; exit 2
        e.show()
        sys.exit(e.exit_code)
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # an unexpected bug: say so plainly; the traceback is one flag away
        if debug:
            raise
        print(
            f"internal error: {e.__class__.__name__}: {e} (run again with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
