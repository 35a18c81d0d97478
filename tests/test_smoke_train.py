"""The training loop learns: a tiny masked LM's validation loss falls; the run folder is complete."""

from __future__ import annotations

from tests.conftest import metric_rows, tiny_pretrain


def test_tiny_mlm_learns_and_writes_run_folder(corpus_dir, bert_tokenizer, tmp_path):
    res = tiny_pretrain(corpus_dir, tmp_path, tokenizer=bert_tokenizer, max_steps=60)
    assert res.steps == 60 and res.stopped_by == "max_steps"
    rows = metric_rows(res.run_dir)
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    assert vals[-1] < vals[0] - 0.5, vals
    for name in (
        "config.yaml",
        "tokenizer/tokenizer.json",
        "model/config.json",
        "model/model.safetensors",
        "model/README.md",
        "metrics.jsonl",
        "loss.png",
        "train_summary.json",
    ):
        assert (res.run_dir / name).exists(), name
    assert list((res.run_dir / "checkpoints").glob("step-*/COMPLETE"))


def test_a_budget_bounds_the_whole_run_setup_evaluation_and_save_included(
    corpus_dir, bert_tokenizer, tmp_path
):
    """--budget is the run's wall clock, not its training's: train_summary.json's wall_seconds (from the
    start to the model saved) stays within it, and training had most of what the run used."""
    import json

    res = tiny_pretrain(corpus_dir, tmp_path, tokenizer=bert_tokenizer, max_steps=None, budget="6s")
    summary = json.loads((res.run_dir / "train_summary.json").read_text())
    assert res.stopped_by == "budget" and summary["stopped_by"] == "budget"
    assert 0.5 * summary["wall_seconds"] < summary["train_seconds"] < summary["wall_seconds"] <= 6.5, summary


def test_max_steps_0_writes_the_seeds_initialised_model_untrained(corpus_dir, bert_tokenizer, tmp_path):
    """--max-steps 0: the model the seed builds, saved untrained (the floor pretraining must beat): the same
    weights twice, and not those of a run that trained (3 steps: the first step's warm-up lr is 0)."""
    from safetensors.torch import load_file

    untrained = [
        tiny_pretrain(corpus_dir, tmp_path, tokenizer=bert_tokenizer, max_steps=0, name=f"zero{i}")
        for i in range(2)
    ]
    trained = tiny_pretrain(corpus_dir, tmp_path, tokenizer=bert_tokenizer, max_steps=3, name="trained")
    assert [r.steps for r in untrained] == [0, 0] and untrained[0].stopped_by == "max_steps"
    a, b, c = (load_file(str(r.run_dir / "model" / "model.safetensors")) for r in (*untrained, trained))
    assert a.keys() == b.keys() == c.keys()
    assert all(a[k].equal(b[k]) for k in a)
    assert not all(a[k].equal(c[k]) for k in a)
    assert [r["step"] for r in metric_rows(untrained[0].run_dir) if "val_loss" in r] == [0, 0]
