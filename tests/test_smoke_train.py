"""The training loop learns: a tiny masked LM's validation loss falls; the run folder is complete."""

from __future__ import annotations

import json

from domainlm.pretrain.loop import pretrain


def test_tiny_mlm_learns_and_writes_run_folder(corpus_dir, bert_tokenizer, tmp_path):
    res = pretrain(
        corpus_dir,
        tokenizer=bert_tokenizer,
        preset="bert-tiny",
        objective="mlm",
        budget="5m",
        max_steps=60,
        name="tiny",
        runs_dir=tmp_path,
        seq_len=32,
        batch_size=8,
        lr=3e-3,
    )
    assert res.steps == 60 and res.stopped_by == "max_steps"
    rows = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
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
