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


# ---- usage errors follow click's convention; only bugs say "internal error" ----------------------------


def _usage_error(capsys, *args: str) -> str:
    from domainlm.cli import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.startswith(f"Usage: domainlm {args[0]} ") and "internal error" not in err, err
    assert f"Try 'domainlm {args[0]} --help' for help." in err
    return err


def test_unknown_option_suggests_the_close_one(capsys):
    err = _usage_error(capsys, "prepare", "x", "--out", "y")
    assert "No such option '--out'" in err and "'--output'" in err


def test_missing_argument_is_a_usage_error(capsys):
    assert "Missing argument 'CORPUS'" in _usage_error(capsys, "tokenizer")


def test_bad_values_of_typed_options_are_usage_errors(capsys):
    err = _usage_error(capsys, "tokenizer", "corpus", "--vocab-size", "many")
    assert "Invalid value for '--vocab-size'" in err and "'many'" in err
    err = _usage_error(capsys, "pretrain", "corpus", "--max-steps", "-1")  # the Field's ge=0, named by flag
    assert "Invalid value for '--max-steps'" in err and "x>=0" in err
    err = _usage_error(capsys, "export", "run", "--tolerance", "-1")
    assert "Invalid value for '--tolerance'" in err


def test_unknown_command_is_a_usage_error():
    res = run_cli("pretrian")
    assert res.returncode == 2 and "No such command 'pretrian'" in res.stderr
    assert "Did you mean 'pretrain'" in res.stderr and "internal error" not in res.stderr


def test_a_real_bug_still_says_internal_error(monkeypatch, capsys):
    import domainlm.export
    from domainlm.cli import main

    def broken(**kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(domainlm.export, "export", broken)
    with pytest.raises(SystemExit) as e:
        main(["export", "run"])
    assert e.value.code == 1
    assert "internal error: ZeroDivisionError: a bug" in capsys.readouterr().err


def test_version():
    from domainlm import __version__

    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"domainlm {__version__}"


# ---- output to a pipe or a file is complete, whatever its width ----------------------------------------


def test_a_wide_table_to_a_pipe_is_not_cut():
    code = (
        "from rich.table import Table; from domainlm.cli import console\n"
        "t = Table(); [t.add_column(f'column {i}') for i in range(12)]\n"
        "t.add_row(*[f'value-{i}-' + 'x' * 12 for i in range(12)]); console().print(t)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "…" not in res.stdout and all(f"value-{i}-{'x' * 12}" in res.stdout for i in range(12))
    assert max(map(len, res.stdout.splitlines())) > 200


def test_recommend_table_piped_to_a_file_keeps_every_cell(corpus_dir, bert_tokenizer, tmp_path):
    out = tmp_path / "log"
    with out.open("w") as f:
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "domainlm.cli",
                "recommend",
                str(corpus_dir),
                "--tokenizer",
                str(bert_tokenizer),
            ]
            + ["--candidates", "bert-tiny", "--probe-steps", "1", "--seq-len", "32", "--batch-size", "2"]
            + ["--no-general", "-o", str(tmp_path / "run.yaml")],
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=300,
        )
    text = out.read_text()
    assert res.returncode == 0, res.stderr
    table = [line for line in text.splitlines() if line.startswith(("┃", "│"))]
    assert any("chosen" in line and "bert-tiny" in line for line in table), text
    assert max(map(len, table)) > 80  # wider than rich's 80-column default without a terminal
    assert "…" not in text
