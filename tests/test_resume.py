"""Reliability of `pretrain`: exact resume after kill -9, clean SIGINT/SIGTERM exit, NaN stop, a failing
save, and resume falling back past a damaged checkpoint. Tiny fp32 runs (bf16 off), one thread, a
checkpoint after every step ("0s") and a metrics row after every step (train.log_every=1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from domainlm.errors import UserError
from domainlm.pretrain import checkpoint
from domainlm.pretrain.loop import pretrain
from tests.conftest import CaptureReporter

SRC = Path(__file__).resolve().parents[1] / "src"
STEPS = 10
SETS = [
    "speed.bf16=off",
    "speed.threads=1",
    "train.log_every=1",
    "train.checkpoint_every=0s",
    "train.eval_every=10h",
    "train.eval_batches=1",
    "train.keep_checkpoints=3",
]


def _kwargs(corpus_dir, bert_tokenizer, runs: Path, name: str, steps: int = STEPS, sets=()) -> dict:
    return dict(
        corpus=str(corpus_dir),
        tokenizer=str(bert_tokenizer),
        preset="bert-tiny",
        objective="mlm",
        budget="30m",
        max_steps=steps,
        name=name,
        runs_dir=str(runs),
        seq_len=32,
        batch_size=4,
        lr=3e-3,
        overrides=[*SETS, *sets],
    )


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    out: dict[int, float] = {}
    for r in rows:
        if "loss" in r:
            assert r["step"] not in out, f"step {r['step']} logged twice"
            out[r["step"]] = r["loss"]
    return out


def _final_val(run_dir: Path) -> float:
    return json.loads((run_dir / "train_summary.json").read_text())["validation"]["loss"]


@pytest.fixture(scope="module")
def reference(corpus_dir, bert_tokenizer, tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must reproduce."""
    runs = tmp_path_factory.mktemp("ref-runs")
    res = pretrain(**_kwargs(corpus_dir, bert_tokenizer, runs, "ref"))
    assert res.steps == STEPS
    return res.run_dir


def _spawn(kwargs: dict, cli: bool = False) -> subprocess.Popen:
    """Run the same training in a child process (library call or the CLI)."""
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    if cli:
        k = kwargs
        cmd = [
            sys.executable,
            "-m",
            "domainlm.cli",
            "pretrain",
            k["corpus"],
            "--tokenizer",
            k["tokenizer"],
            "--preset",
            k["preset"],
            "--objective",
            k["objective"],
            "--budget",
            k["budget"],
            "--max-steps",
            str(k["max_steps"]),
            "--name",
            k["name"],
            "--runs-dir",
            k["runs_dir"],
            "--seq-len",
            str(k["seq_len"]),
            "--batch-size",
            str(k["batch_size"]),
            "--lr",
            str(k["lr"]),
        ]
        for s in k["overrides"]:
            cmd += ["--set", s]
    else:
        code = f"from domainlm.pretrain.loop import pretrain\npretrain(**{kwargs!r})\n"
        cmd = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, ckpt_dir: Path, min_step: int, timeout: float = 240) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout:
        done = [int(p.name.split("-")[1].split(".")[0]) for p in checkpoint.complete(ckpt_dir)]
        if done and max(done) >= min_step:
            return max(done)
        if proc.poll() is not None:
            raise AssertionError(f"child exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no checkpoint appeared in time")


def _kill_and_resume(corpus_dir, bert_tokenizer, tmp_path, reference, kill_after: list[int]):
    kw = _kwargs(corpus_dir, bert_tokenizer, tmp_path, "killed")
    run_dir = tmp_path / "killed"
    for k in kill_after:
        proc = _spawn(kw)
        _wait_for_checkpoint(proc, run_dir / "checkpoints", k)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    res = pretrain(**kw)  # resume=auto
    assert res.steps == STEPS
    ref, got = _losses(reference), _losses(run_dir)
    assert sorted(got) == list(range(1, STEPS + 1))
    assert got == ref  # bit-for-bit: the same loss at every step
    assert _final_val(run_dir) == _final_val(reference)


def test_sigkill_then_resume_reproduces_every_loss(corpus_dir, bert_tokenizer, tmp_path, reference):
    _kill_and_resume(corpus_dir, bert_tokenizer, tmp_path, reference, kill_after=[4])


@pytest.mark.slow
def test_sigkill_twice_at_arbitrary_points(corpus_dir, bert_tokenizer, tmp_path, reference):
    import random

    rng = random.Random(time.time_ns())
    first = rng.randint(1, 4)
    _kill_and_resume(
        corpus_dir, bert_tokenizer, tmp_path, reference, kill_after=[first, rng.randint(first + 1, 8)]
    )


@pytest.mark.parametrize(
    "sig,cli", [(signal.SIGTERM, False), pytest.param(signal.SIGINT, True, marks=pytest.mark.slow)]
)
def test_signal_saves_and_exits_cleanly(corpus_dir, bert_tokenizer, tmp_path, sig, cli):
    kw = _kwargs(corpus_dir, bert_tokenizer, tmp_path, "sig", steps=100000)
    proc = _spawn(kw, cli=cli)
    _wait_for_checkpoint(proc, tmp_path / "sig" / "checkpoints", 2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads((tmp_path / "sig" / "train_summary.json").read_text())
    assert summary["stopped_by"] == sig.name
    last = checkpoint.latest_valid(tmp_path / "sig" / "checkpoints")
    assert last is not None and json.loads((last / "state.json").read_text())["step"] == summary["steps"]
    assert (tmp_path / "sig" / "model" / "model.safetensors").is_file()
    if cli:
        assert "resume" in err  # the user is told how to continue


def test_nan_loss_stops_with_message_and_keeps_checkpoint(corpus_dir, bert_tokenizer, tmp_path, monkeypatch):
    import torch

    from domainlm.pretrain import objectives

    real = objectives.MLMObjective.forward
    calls = {"n": 0}

    def poisoned(self, inputs, labels):
        calls["n"] += 1
        loss = real(self, inputs, labels)
        return loss * float("nan") if calls["n"] >= 4 else loss

    monkeypatch.setattr(objectives.MLMObjective, "forward", poisoned)
    with pytest.raises(UserError) as e:
        pretrain(**_kwargs(corpus_dir, bert_tokenizer, tmp_path, "nan"))
    msg = str(e.value)
    assert "loss became nan at step 4" in msg and "step-000000003" in msg and "intact" in msg
    last = checkpoint.latest_valid(tmp_path / "nan" / "checkpoints")
    assert last is not None and last.name == "step-000000003"
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(str(last / "model.safetensors")).values())


def test_failing_save_leaves_previous_checkpoint_loadable(corpus_dir, bert_tokenizer, tmp_path, monkeypatch):
    import errno

    import safetensors.torch

    real = safetensors.torch.save_file

    def disk_full(tensors, filename, *a, **k):
        if ".staging-3" in str(filename):
            real(tensors, filename, *a, **k)  # a partial file is on disk when the device fills up
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, *a, **k)

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    kw = _kwargs(corpus_dir, bert_tokenizer, tmp_path, "full")
    with pytest.raises(UserError) as e:
        pretrain(**kw)
    assert "No space left on device" in str(e.value) and "step-000000002 is intact" in str(e.value)
    ckpts = tmp_path / "full" / "checkpoints"
    assert not list(ckpts.glob(".staging-*"))
    last = checkpoint.latest_valid(ckpts)
    assert last is not None and last.name == "step-000000002"
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    res = pretrain(**kw)  # the space is back: it resumes from step 2 and finishes
    assert res.steps == STEPS


def test_resume_skips_a_damaged_newest_checkpoint(corpus_dir, bert_tokenizer, tmp_path, reference):
    kw = _kwargs(corpus_dir, bert_tokenizer, tmp_path, "damaged")
    pretrain(**kw)
    ckpts = tmp_path / "damaged" / "checkpoints"
    newest = checkpoint.complete(ckpts)[-1]
    assert newest.name == f"step-{STEPS:09d}"
    blob = newest / "model.safetensors"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the size still matches, the hash does not
    blob.write_bytes(bytes(data))
    rep = CaptureReporter()
    messages = rep.messages

    res = pretrain(**kw, reporter=rep)
    assert any(newest.name in m and "skipped" in m for m in messages), messages
    assert any(f"resumed from step-{STEPS - 1:09d}" in m for m in messages), messages
    assert res.steps == STEPS
    assert _losses(tmp_path / "damaged") == _losses(reference)  # step 10 redone identically
