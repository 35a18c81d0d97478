"""The command line: lists its commands, stays light, and answers bad input with one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    "prepare",
    "tokenizer",
    "recommend",
    "pretrain",
    "evaluate",
    "finetune",
    "export",
    "serve",
    "demo",
]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "domainlm.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_help_lists_every_command():
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in COMMANDS:
        assert cmd in res.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_has_help(cmd):
    res = run_cli(cmd, "--help")
    assert res.returncode == 0 and "Usage" in res.stdout


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys, domainlm.cli; heavy = [m for m in ('torch', 'transformers', 'tokenizers', 'sklearn') "
        "if m in sys.modules]; print(heavy)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def _one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_missing_path(tmp_path):
    line = _one_line_error(run_cli("prepare", str(tmp_path / "nope"), "-o", str(tmp_path / "c")))
    assert "does not exist" in line and "nope" in line


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    line = _one_line_error(run_cli("prepare", str(tmp_path / "empty"), "-o", str(tmp_path / "c")))
    assert "no usable document" in line


def test_not_a_corpus(tmp_path):
    line = _one_line_error(run_cli("pretrain", str(tmp_path)))
    assert "not a corpus folder" in line and "domainlm prepare" in line


def test_unknown_preset(corpus_dir):
    line = _one_line_error(run_cli("pretrain", str(corpus_dir), "--preset", "bert-huge"))
    assert "unknown preset 'bert-huge'" in line and "bert-mini" in line


def test_unknown_objective(corpus_dir):
    line = _one_line_error(run_cli("pretrain", str(corpus_dir), "--objective", "mln"))
    assert "unknown objective 'mln'" in line and "mlm" in line


def test_yaml_typo_lists_valid_keys(corpus_dir, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("train:\n  bugdet: 10m\n")
    line = _one_line_error(run_cli("pretrain", str(corpus_dir), "--config", str(cfg)))
    assert "train.bugdet" in line and "budget" in line and "run.yaml" in line


def test_debug_shows_traceback(tmp_path):
    res = run_cli("--debug", "prepare", str(tmp_path / "nope"))
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_preset_list_prints_parameter_counts():
    res = run_cli("pretrain", "--preset", "list")
    assert res.returncode == 0
    assert "bert-small" in res.stdout and "gpt-mini" in res.stdout and "M" in res.stdout


def test_prepare_then_tokenizer_via_cli(raw_dir, tmp_path):
    corpus, tok = tmp_path / "corpus", tmp_path / "tok"
    res = run_cli("prepare", str(raw_dir), "-o", str(corpus))
    assert res.returncode == 0, res.stderr
    stats = json.loads((corpus / "stats.json").read_text())
    assert stats["documents"]["train"] > 0
    res = run_cli("tokenizer", str(corpus), "-o", str(tok), "--vocab-size", "300")
    assert res.returncode == 0, res.stderr
    assert (tok / "tokenizer.json").is_file()
