"""DDP: `torchrun --nproc-per-node=2` (gloo, CPU) trains the same config as one process with the same
global batch: per-step losses and the final validation loss agree within float tolerance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domainlm.pretrain.loop import pretrain

SRC = Path(__file__).resolve().parents[1] / "src"
SETS = [
    "speed.bf16=off",
    "speed.threads=1",
    "train.log_every=1",
    "train.eval_every=10h",
    "train.eval_batches=2",
    "train.checkpoint_every=10h",
]


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    out: dict[int, float] = {}
    for r in rows:
        if "loss" in r:
            assert r["step"] not in out, "a step was logged twice: only rank 0 may write"
            out[r["step"]] = r["loss"]
    return out


TINY_MODERNBERT = (
    "model.overrides={num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 2, intermediate_size: 48}"
)
# case -> (preset, extra overrides) (ModernBERT shrunk to a tiny shape; its code paths stay the same)
CASES = {
    "bert-tiny": ("bert-tiny", []),
    "modernbert-mini": ("modernbert-mini", [TINY_MODERNBERT]),
    # Muon orthogonalises each process's all-reduced gradient: the same update as one process's
    "modernbert-mini muon": ("modernbert-mini", [TINY_MODERNBERT, "train.optimizer=muon"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(
    case, corpus_dir, bert_tokenizer, tmp_path
):
    preset, extra = CASES[case]
    common = dict(
        corpus=str(corpus_dir),
        tokenizer=str(bert_tokenizer),
        preset=preset,
        objective="mlm",
        budget="30m",
        max_steps=8,
        runs_dir=str(tmp_path),
        seq_len=32,
        lr=3e-3,
        overrides=SETS + extra,
    )
    single = pretrain(**common, name="single", batch_size=8)

    script = tmp_path / "ddp_run.py"
    script.write_text(
        "import json, sys\nfrom domainlm.pretrain.loop import pretrain\npretrain(**json.loads(sys.argv[1]))\n"
    )
    env = dict(
        os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1"
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(script),
        json.dumps({**common, "name": "ddp", "batch_size": 4}),
    ]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]

    ddp_dir = tmp_path / "ddp"
    a, b = _losses(single.run_dir), _losses(ddp_dir)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-5), step
    summary = json.loads((ddp_dir / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["tokens"] == single.tokens
    assert summary["validation"]["loss"] == pytest.approx(single.validation["loss"], rel=1e-4)
