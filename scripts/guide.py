"""Regenerate every output and figure that docs/guide.md quotes: `make guide`, on an idle machine.

    python scripts/guide.py                  # every step in runs/guide, then rewrite the guide's blocks
    python scripts/guide.py --only serve     # some steps again (the earlier steps' files must be there)
    python scripts/guide.py --check          # the guide and STEPS agree (markers, commands); runs nothing

Each step is what a reader types, run by ``bash`` in WORK (default ``runs/guide``) with this project's
environment first on PATH. Its output (stdout and stderr, 100 columns, no colour, WORK's path and the
home folder replaced) is written into the guide between ``<!-- guide:NAME -->`` and
``<!-- /guide:NAME -->``: the command as a ```bash block, then what it printed. The ``machine`` block
states the machine, the versions and the date. Figures are written to docs/img/ (``FIGURES``).
Nothing else in the guide is touched: its prose quotes these blocks or benchmarks/RESULTS.md by section.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
IMG = ROOT / "docs" / "img"
PORT = 8765

# the held-out sentences of the fill-mask step: the demo's own choice (domainlm.demo.cloze_examples)
FILL_MASK = """python -c '
import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer, pipeline
from pathlib import Path
from domainlm.demo import cloze_examples
tok = AutoTokenizer.from_pretrained("runs/law/model")
torch.manual_seed(0)
untrained = AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained("runs/law/model"))
before = pipeline("fill-mask", model=untrained, tokenizer=tok)
after = pipeline("fill-mask", model="runs/law/model")
for text, answer in cloze_examples(Path("corpus"), tok, n=6):
    print(text.replace(tok.mask_token, "____"))
    print("   answer:", answer)
    print("   before:", ", ".join(p["token_str"] for p in before(text, top_k=3)))
    print("   after: ", ", ".join(p["token_str"] for p in after(text, top_k=3)))
'"""

# the labelled task, from the corpus's own metadata: each article's Part of the Constitution
TASK = """python -c '
import json
from collections import Counter
rows = [json.loads(line) for line in open("raw/constitution-of-india.jsonl")]
rows = [r for r in rows if r["part"] is not None]
count = Counter(r["part"] for r in rows)
with open("articles.jsonl", "w") as f:
    for r in rows:
        label = "Part " + str(r["part"]) if count[r["part"]] >= 5 else "other"
        f.write(json.dumps({"text": r["text"], "label": label}) + "\\n")
print(len(rows), "articles,", len({r["part"] for r in rows}), "Parts; the largest:", count.most_common(3))
'"""

TOKENS = """python -c '
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained("tok")
enc = tok(["The Governor shall summon the Legislature.", "Article 21."], padding=True)
print("tokens:        ", tok.convert_ids_to_tokens(enc["input_ids"][0]))
print("input_ids:     ", enc["input_ids"])
print("attention_mask:", enc["attention_mask"])
'"""

ERRORS = """python -c '
import json
for line in list(open("runs/law-part/errors.jsonl"))[:4]:
    e = json.loads(line)
    text = " ".join(e["text"].split())[:70]
    print("row", e["row"], "| gold:", e["gold"], "| predicted:", e["predicted"], round(e["probability"], 2), "|", text)
'"""

SERVE = f"""domainlm serve runs/law --onnx --port {PORT} > serve.log 2>&1 & SERVER=$!
for i in $(seq 120); do curl -sf 127.0.0.1:{PORT}/health > /dev/null && break; sleep 1; done
curl -s -X POST 127.0.0.1:{PORT}/fill-mask -H 'Content-Type: application/json' \\
    -d '{{"inputs": "The President shall be elected by the members of an electoral [MASK].", "top_k": 3}}'
echo
curl -s -X POST 127.0.0.1:{PORT}/embed -H 'Content-Type: application/json' \\
    -d '{{"inputs": ["Protection of life and personal liberty"]}}' | cut -c1-120
echo
kill $SERVER"""


@dataclass
class Step:
    name: str
    command: str
    keep: tuple[int, int] = (40, 20)  # lines kept from the head and the tail of the output
    timeout: int = 1800


STEPS = [
    Step(
        "raw",
        "python -c 'from pathlib import Path; from domainlm.demo import write_demo_corpus; "
        'print(write_demo_corpus(Path("raw")))\'',
    ),  # fmt: skip
    Step("prepare", "domainlm prepare raw/ -o corpus/"),
    Step("tokenizer", "domainlm tokenizer corpus/ --kind wordpiece --vocab-size 8000 -o tok/"),
    Step("tokens", TOKENS),
    Step("recommend", "domainlm recommend corpus/ --tokenizer tok/ --budget 10m -o run.yaml"),
    Step(
        "pretrain",
        "domainlm pretrain corpus/ --tokenizer tok/ --preset modernbert-mini --budget 10m --name law",
    ),
    Step("fill-mask", FILL_MASK),
    Step("evaluate", "domainlm evaluate runs/law --probes constitution --max-docs 10"),
    Step("tokenizer-gpt", "domainlm tokenizer corpus/ --kind bpe --style gpt --vocab-size 8000 -o tok-gpt/"),
    Step(
        "recommend-gpt",
        "domainlm recommend corpus/ --tokenizer tok-gpt/ --task generator --budget 5m -o run-gpt.yaml",
    ),
    Step(
        "pretrain-gpt",
        "domainlm pretrain corpus/ --tokenizer tok-gpt/ --preset llama-mini --objective clm "
        "--budget 5m --name law-gpt",
    ),  # fmt: skip
    Step(
        "evaluate-gpt", "domainlm evaluate runs/law-gpt --baseline ngram --ngram-tokens 10000 --max-docs 10"
    ),
    Step("task", TASK),
    Step(
        "finetune",
        "domainlm finetune runs/law articles.jsonl --methods auto --folds 5 -o runs/law-part",
        (4, 18),
    ),
    Step("errors", ERRORS),
    Step(
        "search",
        "domainlm finetune runs/law articles.jsonl --methods finetune-head --search 6 --budget 5m "
        "--folds 1 -o runs/law-part-search",
    ),  # fmt: skip
    Step(
        "export",
        "domainlm export runs/law --format onnx-int8\ndomainlm export runs/law --format sentence-transformers",
    ),
    Step("serve", SERVE),
]


def environment(work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORCE_COLOR", "CLICOLOR"))}
    return env | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "COLUMNS": "100",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }


# progress bars of libraries (transformers' weight loading), not domainlm's output
NOISE = re.compile(r"^(Loading weights|Batches|Map)\b.*(it/s|s/it)")


def clean(text: str, work: Path, keep: tuple[int, int]) -> str:
    """The output as the guide shows it: no machine path, no carriage-return redraws, head and tail."""
    for p in sorted({str(work.resolve()), str(work)}, key=len, reverse=True):
        text = text.replace(p + os.sep, "").replace(p, ".")
    text = text.replace(str(Path.home()), "~").replace(str(ROOT), "<repository>")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    lines = [ln.rsplit("\r", 1)[-1].rstrip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip() and not NOISE.match(ln)]
    head, tail = keep
    if len(lines) > head + tail:
        lines = lines[:head] + [f"... ({len(lines) - head - tail} lines)"] + lines[-tail:]
    return "\n".join(lines)


def run_step(step: Step, work: Path) -> str:
    t0 = time.perf_counter()
    print(f"[guide] {step.name}: {step.command.splitlines()[0][:90]}", flush=True)
    # one pipe for stdout and stderr: the lines keep the order a reader sees in a terminal
    p = subprocess.run(["bash", "-c", step.command], cwd=work, env=environment(work), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=step.timeout)  # fmt: skip
    out = p.stdout
    if p.returncode != 0:
        sys.stderr.write(out[-4000:])
        raise SystemExit(f"guide step {step.name} failed (exit {p.returncode})")
    print(f"[guide] {step.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return clean(out, work, step.keep)


def block(step: Step, output: str) -> str:
    shown = f"```bash\n{step.command}\n```\n"
    return shown + (f"\n```\n{output}\n```\n" if output else "")


def machine_block() -> str:
    import importlib.metadata as md

    from domainlm import machine

    m = machine.describe()
    vers = ", ".join(f"{p} {md.version(p)}" for p in ("domainlm", "torch", "transformers", "scikit-learn"))
    load = os.getloadavg()[0]
    return (
        f"Generated by `make guide` (scripts/guide.py) on {time.strftime('%Y-%m-%d')}: {m.get('cpu')}, "
        f"{m.get('cores')} cores, {m.get('memory_gb')} GB, bf16 {'yes' if m.get('bf16') else 'no'}, "
        f"Python {m.get('python')}, {vers}; load average {load:.2f} before the run.\n"
    )


MARK = re.compile(r"(<!-- guide:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /guide:(?P=name) -->)", re.S)


def rewrite(text: str, blocks: dict[str, str]) -> str:
    return MARK.sub(lambda m: m.group(1) + blocks.get(m.group("name"), m.group("body")) + m.group(4), text)


def check(text: str) -> list[str]:
    """Problems: a step without its block, a block without its step, a block whose command is not the
    step's (the guide was edited by hand)."""
    found = {m.group("name"): m.group("body") for m in MARK.finditer(text)}
    names = {s.name for s in STEPS} | {"machine"}
    problems = [f"the guide has no block for step '{n}'" for n in sorted(names - set(found))]
    problems += [
        f"the guide's block '{n}' is no step of scripts/guide.py" for n in sorted(set(found) - names)
    ]
    for s in STEPS:
        if s.name in found and not found[s.name].startswith(f"```bash\n{s.command}\n```\n"):
            problems.append(f"the guide's block '{s.name}' does not show the step's command")
    return problems


# ---- figures --------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fig_pipeline(work: Path, out: Path) -> None:
    plt = _plt()
    stages = ["folder of\nlaw", "prepare", "tokenizer", "recommend", "pretrain", "evaluate", "finetune",
              "export", "serve"]  # fmt: skip
    fig, ax = plt.subplots(figsize=(12, 1.8))
    for i, s in enumerate(stages):
        ax.text(i, 0, s, ha="center", va="center", fontsize=10,
                bbox={"boxstyle": "round", "fc": "#dde8f5" if i else "#f1e3c8", "ec": "#446"})  # fmt: skip
        if i:
            ax.annotate("", (i - 0.38, 0), (i - 0.62, 0), arrowprops={"arrowstyle": "->"})
    ax.set_xlim(-0.6, len(stages) - 0.4)
    ax.set_ylim(-0.6, 0.6)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def fig_tokenizer(work: Path, out: Path) -> None:
    """Pieces per word, domain against generic, for the words the tokenizer report picked
    (tok/report.json: frequent domain words the two tokenizers cut differently)."""
    plt = _plt()
    rep = json.loads((work / "tok" / "report.json").read_text())
    (dname, dom), (gname, gen) = list(rep["tokenizers"].items())[:2]
    rows = rep["examples"][::-1]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(rows) + 1.4))
    y = range(len(rows))
    ax.barh(
        [i + 0.2 for i in y],
        [len(r[dname]) for r in rows],
        0.4,
        color="#2a7",
        label=f"{dname} ({dom['vocab_size']:,} tokens)",
    )
    ax.barh(
        [i - 0.2 for i in y],
        [len(r[gname]) for r in rows],
        0.4,
        color="#c73",
        label=f"{gname} ({gen['vocab_size']:,} tokens)",
    )
    for i, r in enumerate(rows):
        ax.text(len(r[dname]) + 0.1, i + 0.2, " ".join(r[dname]), va="center", fontsize=8, family="monospace")
        ax.text(len(r[gname]) + 0.1, i - 0.2, " ".join(r[gname]), va="center", fontsize=8, family="monospace")
    ax.set_yticks(list(y), [r["word"] for r in rows])
    ax.set_xlabel("pieces per word")
    ax.set_xlim(0, max(len(r[k]) for r in rows for k in (dname, gname)) + 4)
    ax.set_title(f"fertility on the validation split: domain {dom['fertility']:.3f}, generic {gen['fertility']:.3f} "
                 "tokens per word")  # fmt: skip
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _curve(run: Path, key: str) -> list[tuple[float, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["elapsed"] / 60, r[key]) for r in rows if key in r]


def fig_pretrain(work: Path, out: Path) -> None:
    import math

    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    law = work / "runs" / "law"
    pts = _curve(law, "val_accuracy")
    lines = a.plot(*zip(*pts, strict=True), "o-", label="masked accuracy (left axis)")
    a.set_xlabel("minutes of training")
    a.set_ylabel("held-out masked accuracy")
    a.set_title("masked LM (modernbert-mini): validation")
    a.grid(alpha=0.3)
    # the held-out loss beside it, and the step train.keep_best shipped: on many passes over a small
    # corpus the loss turns up while the accuracy still climbs
    loss = [(m, v) for m, v in _curve(law, "val_loss") if m > 0]
    a2 = a.twinx()
    lines += a2.plot(*zip(*loss, strict=True), "s--", color="#c63", label="loss, nats per token (right axis)")
    a2.set_ylabel("held-out loss")
    from domainlm.config import read_run_config
    from domainlm.pretrain.loop import keep_best_by

    kept = json.loads((law / "train_summary.json").read_text()).get("kept_step")
    cfg = read_run_config(law)
    by = {"loss": "lowest loss", "accuracy": "most accurate"}[
        keep_best_by(cfg.train.keep_best_metric, cfg.model.objective)
    ]
    rows = [json.loads(line) for line in (law / "metrics.jsonl").read_text().splitlines() if line.strip()]
    at = [r["elapsed"] / 60 for r in rows if r.get("step") == kept and "val_loss" in r]
    if at:
        lines.append(a.axvline(at[0], color="grey", ls=":", label=f"model/ ships step {kept} ({by})"))
    a.legend(handles=lines, loc="center right", fontsize=8)
    pts = _curve(work / "runs" / "law-gpt", "val_loss")
    b.plot(*zip(*pts, strict=True), "o-", label="llama-mini (causal LM)")
    ev = json.loads((work / "runs" / "law-gpt" / "eval.json").read_text())
    ngram = ev.get("baseline", {}).get("ngram", {}).get("perplexity")
    if ngram:
        b.axhline(math.log(ngram), ls="--", color="grey", label=f"Kneser-Ney 5-gram (perplexity {ngram:.1f})")
    b.set_xlabel("minutes of training")
    b.set_ylabel("held-out loss (nats per token)")
    b.set_title("causal LM against the n-gram")
    b.set_ylim(top=min(9, b.get_ylim()[1]))
    b.grid(alpha=0.3)
    b.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def fig_leaderboard(work: Path, out: Path) -> None:
    plt = _plt()
    m = json.loads((work / "runs" / "law-part" / "metrics.json").read_text())
    rows = sorted(m["leaderboard"], key=lambda r: r["macro_f1"]["mean"])
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    colors = ["#c63" if r["method"] == m["shipped"] else "#579" for r in rows]
    ax.barh([r["method"] for r in rows], [r["macro_f1"]["mean"] for r in rows],
            xerr=[r["macro_f1"].get("std", 0) for r in rows], color=colors)  # fmt: skip
    ax.set_xlabel(f"macro-F1, mean ± std over {m['folds']} folds (shipped: {m['shipped']})")
    ax.set_title("article -> Part of the Constitution")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def fig_confusion(work: Path, out: Path) -> None:
    shutil.copyfile(work / "runs" / "law-part" / "confusion.png", out)


def fig_study(work: Path, out: Path) -> None:
    """The study's plot, drawn from the evidence the package ships (what `recommend` reads); none
    until the study is published (benchmarks/model_selection.py --publish)."""
    from domainlm import evidence

    if not evidence.SHIPPED.is_file():
        print("[guide] no study evidence shipped yet: docs/img/study.png not drawn")
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import model_selection

    model_selection.plot(json.loads(evidence.SHIPPED.read_text()), out)


# figure -> (what it shows, the function that draws it from WORK)
FIGURES = {
    "pipeline.png": ("the pipeline, folder to served model", fig_pipeline),
    "tokenizer.png": ("legal words split by the domain tokenizer and by a generic one", fig_tokenizer),
    "pretrain.png": (
        "validation curves: ModernBERT's accuracy, loss and kept step; causal loss against the 5-gram",
        fig_pretrain,
    ),
    "leaderboard.png": ("the classifier leaderboard on the Part task, TF-IDF included", fig_leaderboard),
    "confusion.png": ("the shipped classifier's out-of-fold confusion matrix", fig_confusion),
    "study.png": ("the model-selection study: quality against CPU-minutes per family", fig_study),
}


def render_html(out: Path) -> Path:
    """The guide as one HTML page (python-markdown, tables and fenced code), its images beside it: what a
    reader of the rendered post sees."""
    import markdown

    body = markdown.markdown(GUIDE.read_text(), extensions=["tables", "fenced_code", "toc"])
    style = ("body{max-width:60rem;margin:2rem auto;font:16px/1.5 sans-serif;padding:0 1rem}"
             "pre{overflow-x:auto;background:#f6f6f6;padding:.6rem;font-size:12px}"
             "img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .4rem}")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(IMG, out.parent / "img", dirs_exist_ok=True)
    for name in ("prepare-and-pretrain.md", "evaluate-finetune.md", "export-and-serve.md", "architecture.md"):
        shutil.copyfile(GUIDE.parent / name, out.parent / name)
    out.write_text(
        f"<!doctype html><meta charset=utf-8><title>domainlm guide</title><style>{style}</style>{body}"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "guide"), help="scratch folder")
    ap.add_argument("--only", default=None, help=f"comma list of steps: {', '.join(s.name for s in STEPS)}")
    ap.add_argument("--check", action="store_true", help="the guide and STEPS agree; run nothing")
    ap.add_argument("--html", metavar="FILE", help="render the guide to FILE (a local preview); run nothing")
    a = ap.parse_args()
    if a.html:
        print(f"wrote {render_html(Path(a.html))}")
        return
    if a.check:
        problems = check(GUIDE.read_text())
        print("\n".join(problems) or "the guide's blocks match scripts/guide.py")
        raise SystemExit(1 if problems else 0)
    work = Path(a.work)
    only = set(a.only.split(",")) if a.only else None
    if only is None:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    blocks = {"machine": machine_block()} if only is None else {}  # the machine of the full run stays
    for step in STEPS:
        if only is None or step.name in only:
            blocks[step.name] = block(step, run_step(step, work))
            GUIDE.write_text(rewrite(GUIDE.read_text(), blocks))  # a later failure keeps what is done
    IMG.mkdir(parents=True, exist_ok=True)
    for name, (what, fn) in FIGURES.items():
        if only is None or name.removesuffix(".png") in only:
            fn(work, IMG / name)
            if (IMG / name).is_file():
                print(f"[guide] docs/img/{name}: {what}")
    problems = check(GUIDE.read_text())
    print("\n".join(problems) or f"rewrote {len(blocks)} block(s) of docs/guide.md")


if __name__ == "__main__":
    main()
