"""The `domainlm` command line: one subcommand per stage, each a thin wrapper over a quiet function.

    domainlm prepare RAW -o corpus/        == domainlm.prepare.prepare([...], "corpus/")
    domainlm tokenizer corpus/ -o tok/     == domainlm.tokenizer.train_tokenizer("corpus/", "tok/")
    domainlm pretrain corpus/ --budget 10m == domainlm.train.pretrain("corpus/", budget="10m")
    domainlm evaluate runs/NAME            == domainlm.evaluate.evaluate(["runs/NAME"])
    domainlm demo                          == domainlm.demo.demo()

Heavy imports (torch, transformers) happen inside the commands, so `domainlm --help` is instant.
A UserError prints one line and exits 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="domainlm",
    help="Train a language model on your own corpus on one CPU machine, end to end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", help="YAML file of overrides (see configs/)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override one key: --set train.lr=3e-4")]


@app.command()
def prepare(
    inputs: Annotated[list[str], typer.Argument(help="folders (recursive) or files to read")],
    output: Annotated[str, typer.Option("--output", "-o", help="corpus folder to write")] = "corpus",
    text_field: Annotated[str | None, typer.Option(help="JSON/JSONL field with the text")] = None,
    text_column: Annotated[str | None, typer.Option(help="CSV/TSV column with the text")] = None,
    group_by: Annotated[str | None, typer.Option(help="metadata field kept within one split")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the split")] = None,
    min_chars: Annotated[int | None, typer.Option(help="minimum document length")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Read, clean, deduplicate and split a folder of documents into a corpus."""
    from .prepare import prepare as run

    res = run(inputs, output, config, set_, text_field=text_field, text_column=text_column, group_by=group_by,
              seed=seed, min_chars=min_chars)
    s = res.stats
    t = Table(title=f"corpus: {res.output}")
    for col in ("split", "documents", "characters", "words", "≈tokens"):
        t.add_column(col, justify="right" if col != "split" else "left")
    for split in ("train", "validation", "test"):
        t.add_row(split, f"{s['documents'].get(split, 0):,}", f"{s['characters'].get(split, 0):,}",
                  f"{s['words'].get(split, 0):,}", f"{s['estimated_tokens'].get(split, 0):,}")
    out.print(t)
    out.print(f"{s['files']} files read, {s['duplicates_removed']} duplicates removed, "
              f"{s['quarantined']} items quarantined ({res.output / 'quarantine.jsonl'})")
    for reason, n in sorted(s["quarantine_reasons"].items(), key=lambda kv: -kv[1]):
        out.print(f"  {n:>6}  {reason}")


@app.command()
def tokenizer(
    corpus: Annotated[str, typer.Argument(help="corpus folder made by `domainlm prepare`")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="tokenizer folder")] = None,
    kind: Annotated[str | None, typer.Option(help="wordpiece | bpe | unigram")] = None,
    vocab_size: Annotated[int | None, typer.Option(help="vocabulary size")] = None,
    lowercase: Annotated[bool | None, typer.Option("--lowercase/--cased", help="lowercase the text")] = None,
    style: Annotated[str | None, typer.Option(help="bert | roberta | gpt special tokens")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train a domain tokenizer on the corpus's train split."""
    from .tokenizer import train_tokenizer

    res = train_tokenizer(corpus, output, kind, vocab_size, lowercase, style, config, set_)
    out.print(f"{res.kind} tokenizer, {res.vocab_size:,} tokens ({res.style} style) -> {res.output}")


@app.command()
def pretrain(
    corpus: Annotated[str | None, typer.Argument(help="corpus folder made by `domainlm prepare`")] = None,
    tokenizer: Annotated[str | None, typer.Option(help="tokenizer folder (default: train one)")] = None,
    preset: Annotated[str | None, typer.Option(help="architecture; `--preset list` prints them")] = None,
    objective: Annotated[str | None, typer.Option(help="mlm | electra | clm")] = None,
    budget: Annotated[str | None, typer.Option(help="wall-clock budget: 90s, 10m, 2h")] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after N optimizer steps")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="stop after N tokens")] = None,
    name: Annotated[str | None, typer.Option(help="run name (folder under --runs-dir)")] = None,
    runs_dir: Annotated[str | None, typer.Option(help="where run folders live")] = None,
    init_from: Annotated[str | None, typer.Option(help="continue pretraining this local HF model")] = None,
    seq_len: Annotated[int | None, typer.Option(help="tokens per sequence")] = None,
    batch_size: Annotated[int | None, typer.Option(help="sequences per batch")] = None,
    lr: Annotated[float | None, typer.Option(help="peak learning rate")] = None,
    resume: Annotated[str, typer.Option(help="auto | never | must")] = "auto",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train a masked, ELECTRA or causal LM within a wall-clock budget (resumable; torchrun for DDP)."""
    if preset == "list":
        from rich import box

        from .presets import describe

        t = Table(title="presets (parameters at a 16k vocabulary)", box=box.SIMPLE, padding=(0, 1), pad_edge=False)
        for col in ("preset", "family", "objective", "layers", "hidden", "params", "generator"):
            t.add_column(col, no_wrap=True, justify="left" if col in ("preset", "family", "objective") else "right")
        for r in describe():
            gen = f"{r['generator_parameters'] / 1e6:.1f}M" if r["generator_parameters"] else "-"
            t.add_row(r["preset"], r["family"], r["objectives"], str(r["layers"]), str(r["hidden"]),
                      f"{r['parameters'] / 1e6:.1f}M", gen)
        out.print(t)
        return
    from .progress import RichReporter
    from .train import pretrain as run

    res = run(corpus, tokenizer, preset, objective, budget, max_steps, max_tokens, name, runs_dir, init_from,
              seq_len, batch_size, lr, config, set_, resume=resume, reporter=RichReporter(err))
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    out.print(f"trained {res.steps} steps, {res.tokens:,} tokens, {res.tokens_per_s:,.0f} tokens/s "
              f"(stopped by {res.stopped_by})")
    out.print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in res.validation.items()))
    out.print(f"model: {res.model_dir}")
    if res.stopped_by in ("SIGINT", "SIGTERM"):
        out.print("interrupted and saved: run the same command again to resume")


@app.command()
def evaluate(
    runs: Annotated[list[str], typer.Argument(help="run folders to evaluate")],
    eval_batches: Annotated[int | None, typer.Option(help="validation batches")] = None,
) -> None:
    """Evaluate runs on the validation split; print a table; write eval.json in each run."""
    from .evaluate import evaluate as run

    res = run(runs, eval_batches)
    t = Table(title="evaluation (validation split, fixed masks)")
    keys = sorted({k for r in res.values() for k in r if isinstance(r[k], float)})
    t.add_column("run")
    for k in keys:
        t.add_column(k, justify="right")
    for run_dir, r in res.items():
        t.add_row(run_dir, *[f"{r[k]:.4f}" if k in r else "-" for k in keys])
    out.print(t)


@app.command()
def demo(
    budget: Annotated[str, typer.Option(help="pretraining wall-clock budget")] = "3m",
    runs_dir: Annotated[str, typer.Option(help="where run folders live")] = "runs",
    name: Annotated[str, typer.Option(help="run name")] = "demo",
    preset: Annotated[str, typer.Option(help="architecture")] = "bert-mini",
) -> None:
    """The whole job on the Constitution of India: prepare, tokenizer, pretrain, evaluate, fill-mask."""
    from .demo import demo as run
    from .progress import RichReporter

    res = run(budget, runs_dir, name, preset, reporter=RichReporter(err))
    ev = res["eval"]
    out.print(f"\nvalidation masked-token accuracy {ev['accuracy']:.1%}, loss {ev['loss']:.3f} "
              f"({res['steps']} steps, {res['tokens_per_s']:,.0f} tokens/s)")
    for ex in res["examples"]:
        out.print(f"\n[bold]{ex['text']}[/bold]   (answer: {ex['answer']})")
        out.print("  before: " + ", ".join(f"{t} {p:.2f}" for t, p in ex["before"]))
        out.print("  after:  " + ", ".join(f"{t} {p:.2f}" for t, p in ex["after"]))
    out.print(f"\nmodel folder: {res['model_dir']}  (loads with transformers.pipeline('fill-mask', model=...))")


def _version_callback(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"domainlm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True)] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    """Train a language model on your own corpus on one CPU machine, end to end."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning UserError into one line and exit code 2."""
    import click

    from .errors import UserError

    # transformers/hub progress bars would interleave with ours
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = [a for a in (sys.argv[1:] if argv is None else argv)]
    debug = "--debug" in args or os.environ.get("DOMAINLM_DEBUG") == "1"
    command = typer.main.get_command(app)
    try:
        command.main(args, prog_name="domainlm", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except UserError as e:
        if debug:
            raise
        err.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # an unexpected bug: say so plainly; the traceback is one flag away
        if debug:
            raise
        err.print(f"internal error: {e.__class__.__name__}: {e} (run again with --debug for the traceback)",
                  markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()


