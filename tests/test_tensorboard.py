"""TensorBoard for pretrain: rank 0 writes event files beside metrics.jsonl with the same numbers; the
switch `train.tensorboard` turns them off, and `on` without the package is a clear error."""

from __future__ import annotations

import pytest

from domainlm.errors import UserError
from tests.conftest import metric_rows, tiny_pretrain

SETS = ["speed.threads=1", "train.log_every=1", "train.eval_every=0s", "train.eval_batches=1"]


def _scalars(folder) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_hold_the_metrics_rows(corpus_dir, bert_tokenizer, tmp_path):
    pytest.importorskip("tensorboard")
    res = tiny_pretrain(corpus_dir, tmp_path, tokenizer=bert_tokenizer, max_steps=4, overrides=SETS)
    got = _scalars(res.run_dir / "tensorboard")
    assert {"train/loss", "train/lr", "train/tokens_per_s", "val/loss", "val/accuracy"} <= set(got), got
    rows = metric_rows(res.run_dir)
    for key, tag in (("loss", "train/loss"), ("lr", "train/lr"), ("val_loss", "val/loss")):
        want = {r["step"]: r[key] for r in rows if key in r}
        assert got[tag] == pytest.approx(want, rel=1e-6), tag  # events are float32
    assert sorted(got["train/loss"]) == [1, 2, 3, 4] and 0 in got["val/loss"]


def test_tensorboard_off_writes_no_events(corpus_dir, bert_tokenizer, tmp_path):
    sets = [*SETS, "train.tensorboard=off"]
    res = tiny_pretrain(corpus_dir, tmp_path, tokenizer=bert_tokenizer, max_steps=1, overrides=sets)
    assert (res.run_dir / "metrics.jsonl").is_file() and not (res.run_dir / "tensorboard").exists()


def test_tensorboard_on_without_the_package_names_the_setting(corpus_dir, tmp_path, monkeypatch):
    from domainlm.pretrain import loop

    monkeypatch.setattr(loop, "tensorboard_installed", lambda: False)
    with pytest.raises(UserError, match="train.tensorboard=on") as e:
        tiny_pretrain(corpus_dir, tmp_path, overrides=["train.tensorboard=on"])
    assert "pip install tensorboard" in e.value.fix
