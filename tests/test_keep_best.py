"""train.keep_best: model/ holds the weights of the best validation (the lowest loss, or the highest
masked accuracy: train.keep_best_metric, whose default `auto` is the accuracy for a masked LM and the
loss for the other objectives), the checkpoint the last step's, and a resumed run keeps the same best as
one uninterrupted run. train.patience stops at the bottom."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from domainlm.config import TrainConfig
from domainlm.errors import UserError
from domainlm.pretrain import checkpoint
from domainlm.pretrain.loop import best_by, keep_best_by, pretrain
from tests.conftest import kill_after_checkpoint

TINY_YAML = (
    "model.overrides={num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 2, intermediate_size: 48}"
)
# validation after every step; a learning rate high enough that held-out loss rises again within 12 steps;
# kept by the loss (these tests check what keep_best does with its pick; the last ones, which step it picks)
SETS = [
    TINY_YAML,
    "train.keep_best_metric=loss",
    "speed.threads=1",
    "speed.bf16=off",
    "train.eval_batches=1",
    "train.log_every=1",
    "train.eval_every=0s",
    "train.warmup=0",
    "train.min_lr_ratio=1",
]


def _kw(corpus_dir, bert_tokenizer, tmp_path, steps: int, extra=()):
    return dict(
        corpus=str(corpus_dir),
        tokenizer=str(bert_tokenizer),
        preset="modernbert-mini",
        objective="mlm",
        budget="5m",
        max_steps=steps,
        runs_dir=str(tmp_path),
        seq_len=32,
        batch_size=4,
        lr=0.3,
        overrides=[*SETS, *extra],
    )


def _val_losses(run_dir) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["val_loss"] for r in rows if "val_loss" in r and r["step"] > 0}


def _model_weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def _last_checkpoint_weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.complete(run_dir / "checkpoints")[-1] / "model.safetensors"))


def test_model_is_the_lowest_validation_and_the_checkpoint_the_last_step(
    corpus_dir, bert_tokenizer, tmp_path
):
    res = pretrain(**_kw(corpus_dir, bert_tokenizer, tmp_path, 12), name="best")
    val = _val_losses(res.run_dir)
    best_step = min(val, key=lambda s: (val[s], s))
    summary = json.loads((res.run_dir / "train_summary.json").read_text())
    assert res.steps == 12 and sorted(val) == list(range(1, 13))
    assert best_step < 12, f"held-out loss did not rise in this run: {val}"  # the case the setting is for
    assert summary["kept_step"] == best_step
    assert summary["validation"]["loss"] == val[best_step] == res.validation["loss"]
    assert summary["last_validation"]["loss"] == val[12] > val[best_step]
    shipped, last = _model_weights(res.run_dir), _last_checkpoint_weights(res.run_dir)
    common = sorted(set(shipped) & set(last))
    assert common and any(not torch.equal(shipped[k], last[k]) for k in common)
    # the shipped weights are the best copy the checkpoint holds beside the last step's
    best, aliases = checkpoint.load_best(checkpoint.complete(res.run_dir / "checkpoints")[-1])
    best = best | {k: best[v] for k, v in aliases.items()}
    assert all(torch.equal(shipped[k], best[k]) for k in shipped if k in best)

    off = pretrain(**_kw(corpus_dir, bert_tokenizer, tmp_path, 12, ["train.keep_best=false"]), name="last")
    off_summary = json.loads((off.run_dir / "train_summary.json").read_text())
    assert off_summary["kept_step"] == 12 and off_summary["validation"]["loss"] == val[12]
    assert all(torch.equal(_model_weights(off.run_dir)[k], last[k]) for k in common)


def test_resumed_run_keeps_the_best_of_the_uninterrupted_run(corpus_dir, bert_tokenizer, tmp_path):
    """kill -9 after the step-6 checkpoint, resume: the same kept step and weights as one run."""

    kw = _kw(
        corpus_dir, bert_tokenizer, tmp_path, 12, ["train.checkpoint_every=0s", "train.keep_checkpoints=20"]
    )
    ref = pretrain(**kw, name="ref")
    kill_after_checkpoint(kw, "cut", 6)
    resumed = pretrain(**kw, name="cut", resume="must")
    a = json.loads((ref.run_dir / "train_summary.json").read_text())
    b = json.loads((resumed.run_dir / "train_summary.json").read_text())
    assert a["kept_step"] < 12 and b["kept_step"] == a["kept_step"] and b["validation"] == a["validation"]
    wa, wb = _model_weights(ref.run_dir), _model_weights(resumed.run_dir)
    assert sorted(wa) == sorted(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


def _patience_stop(val: dict[int, float], patience: int) -> tuple[int, int]:
    """(the step a run stops at with ``patience``, the step it keeps), from a longer run's validations."""
    best = None
    for step in sorted(val):
        if best is None or val[step] < val[best]:
            best = step
        elif sum(1 for s in val if best < s <= step) >= patience:
            return step, best
    raise AssertionError(f"held-out loss never stalled for {patience} validations: {val}")


def test_patience_stops_when_held_out_loss_stalls_and_ships_the_best(corpus_dir, bert_tokenizer, tmp_path):
    full = pretrain(**_kw(corpus_dir, bert_tokenizer, tmp_path, 12), name="full")
    stop, kept = _patience_stop(_val_losses(full.run_dir), 2)
    assert stop < 12  # the run stops early, on the same losses (constant lr: the schedule is the same)
    res = pretrain(**_kw(corpus_dir, bert_tokenizer, tmp_path, 12, ["train.patience=2"]), name="patient")
    summary = json.loads((res.run_dir / "train_summary.json").read_text())
    assert res.stopped_by == "patience" and res.steps == stop and summary["kept_step"] == kept
    assert _val_losses(res.run_dir) == {s: v for s, v in _val_losses(full.run_dir).items() if s <= stop}


def test_patience_needs_keep_best(corpus_dir, bert_tokenizer, tmp_path):
    extra = ["train.patience=2", "train.keep_best=false"]
    with pytest.raises(UserError, match="train.patience"):
        pretrain(**_kw(corpus_dir, bert_tokenizer, tmp_path, 12, extra), name="bad")


def test_best_by_accuracy_takes_the_higher_accuracy_then_the_lower_loss_and_falls_back_to_the_loss():
    best = {"loss": 2.0, "accuracy": 0.60}
    assert best_by("accuracy", {"loss": 2.5, "accuracy": 0.62}, best)  # more accurate, though a higher loss
    assert not best_by("loss", {"loss": 2.5, "accuracy": 0.62}, best)
    assert not best_by("accuracy", {"loss": 1.5, "accuracy": 0.59}, best)
    assert best_by("accuracy", {"loss": 1.9, "accuracy": 0.60}, best)  # a tie goes to the lower loss
    assert not best_by("accuracy", dict(best), best)  # an equal validation keeps the earlier one
    assert best_by("accuracy", {"loss": 1.9}, best) and not best_by("accuracy", {"loss": 2.1}, best)


def _val_rows(run_dir) -> dict[int, dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if "val_loss" in r and r["step"] > 0}


def test_auto_is_the_accuracy_for_a_masked_lm_and_the_loss_for_the_others():
    assert TrainConfig().keep_best_metric == "auto"
    assert keep_best_by("auto", "mlm") == "accuracy"
    assert [keep_best_by("auto", o) for o in ("clm", "electra", "plm", "span")] == ["loss"] * 4
    assert keep_best_by("loss", "mlm") == "loss" and keep_best_by("accuracy", "clm") == "accuracy"


@pytest.mark.parametrize("metric", ["accuracy", "auto"])
def test_keep_best_metric_accuracy_ships_the_most_accurate_validation(
    corpus_dir, bert_tokenizer, tmp_path, metric
):
    # lr 0.03: the held-out loss is lowest early while the accuracy peaks later (the case the setting is for)
    kw = _kw(corpus_dir, bert_tokenizer, tmp_path, 12, [f"train.keep_best_metric={metric}"]) | {"lr": 0.03}
    res = pretrain(**kw, name="acc")
    val = _val_rows(res.run_dir)
    assert sorted(val) == list(range(1, 13))
    # the first step with the highest (accuracy, -loss), and the step the loss would keep
    expected = max(sorted(val), key=lambda s: (val[s]["val_accuracy"], -val[s]["val_loss"], -s))
    by_loss = min(sorted(val), key=lambda s: val[s]["val_loss"])
    assert expected != by_loss, f"loss and accuracy agree in this run, so it tests nothing: {val}"
    summary = json.loads((res.run_dir / "train_summary.json").read_text())
    assert summary["kept_step"] == expected
    assert summary["validation"]["accuracy"] == val[expected]["val_accuracy"] == res.validation["accuracy"]
