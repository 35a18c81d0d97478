"""Presets: every family trains through the loop (sparse and dense MLM heads) and overfits one batch
through its registered objective, `--preset list` prints parameter counts, the shapes follow their papers."""

from __future__ import annotations

import math

import pytest

from domainlm.pretrain import presets
from tests.conftest import tiny_pretrain

# shrink every preset to a few thousand parameters; the family's code paths stay the same
TINY = {
    "bert": {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64},
    "gpt2": {"n_layer": 1, "n_embd": 32, "n_head": 2},
    "llama": {
        "num_hidden_layers": 1,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "intermediate_size": 64,
    },
}
TINY["roberta"] = TINY["albert"] = TINY["bert"]
TINY["albert"] = {**TINY["bert"], "embedding_size": 16}
TINY["electra"] = {**TINY["bert"], "embedding_size": 16}


def _yaml(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"


@pytest.mark.parametrize(
    "preset", ["bert-mini", "roberta-small", "albert-small", "electra-small", "gpt-mini", "llama-mini"]
)
@pytest.mark.parametrize(
    "sparse", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["sparse", "dense"]
)
def test_every_family_trains(preset, sparse, corpus_dir, bert_tokenizer, tmp_path):
    family = presets.family_of(preset)
    objective = presets.objectives_of(preset)[0]
    if not sparse and objective == "clm":
        pytest.skip("sparse prediction is an MLM setting")
    res = tiny_pretrain(
        corpus_dir,
        tmp_path,
        tokenizer=bert_tokenizer,
        preset=preset,
        objective=objective,
        max_steps=3,
        name=preset,
        batch_size=4,
        lr=1e-3,
        overrides=[
            f"model.overrides={_yaml(TINY[family])}",
            f"speed.sparse_prediction={sparse}",
            "speed.threads=1",
            "train.eval_batches=1",
        ],
    )
    assert res.steps == 3 and math.isfinite(res.validation["loss"])
    assert (res.model_dir / "config.json").is_file()


@pytest.mark.parametrize(
    "preset", ["bert-mini", "roberta-small", "albert-small", "electra-small", "gpt-mini", "llama-mini"]
)
def test_every_family_overfits_one_batch(preset, corpus_dir, bert_tokenizer):
    """The objective's loss, normalised as the loop normalises it, falls on one repeated batch."""
    import torch

    from domainlm.corpus.documents import read_documents
    from domainlm.pretrain.distributed import Dist
    from domainlm.pretrain.loop import REDUCTIONS
    from domainlm.pretrain.objectives import OBJECTIVES, MaskSpec, Setup
    from domainlm.tokens.tokenizer import load_tokenizer, special_ids

    tok = load_tokenizer(bert_tokenizer)
    family, objective = presets.family_of(preset), presets.objectives_of(preset)[0]
    torch.manual_seed(0)
    model = presets.build(preset, objective, len(tok), 64, special_ids(tok), overrides=TINY[family]).model
    texts = [d["text"] for _, d in zip(range(4), read_documents(corpus_dir, "train"), strict=False)]
    ids = tok(texts, truncation=True, max_length=32, padding="max_length", return_tensors="pt")["input_ids"]
    specials = [tok.cls_token_id, tok.sep_token_id, tok.pad_token_id]
    spec = MaskSpec(tok.mask_token_id, len(tok), specials, probability=0.15, seed=0)
    obj = OBJECTIVES[objective](Setup(model, family, spec, None, True, 0))
    batch = obj.batch(ids, range(4))  # the same masks (and ELECTRA draws) at every step
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss_sum, _ = obj.loss(obj.module, batch)
        loss = loss_sum / REDUCTIONS[obj.reduction](batch.count, Dist())
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert losses[-1] < 0.5 * losses[0], losses


def test_preset_shapes_follow_their_papers():
    rows = {r["preset"]: r for r in presets.describe(vocab_size=30522)}
    for name in (
        "bert-tiny",
        "bert-mini",
        "bert-small",
        "bert-medium",
        "roberta-small",
        "albert-small",
        "electra-small",
        "gpt-mini",
        "gpt-small",
    ):
        assert name in rows
    assert (rows["bert-small"]["layers"], rows["bert-small"]["hidden"]) == (6, 512)
    assert (rows["bert-tiny"]["layers"], rows["bert-tiny"]["hidden"]) == (2, 128)
    assert 4.0e6 < rows["bert-tiny"]["parameters"] < 4.8e6  # Turc et al. 2019: BERT-Tiny 4.4M
    assert 13e6 < rows["electra-small"]["parameters"] < 15e6  # Clark et al. 2020: ELECTRA-Small 14M
    assert rows["electra-small"]["generator_parameters"] > 0
    assert rows["albert-small"]["parameters"] < rows["bert-small"]["parameters"] / 3  # shared layers


def test_cli_preset_list_prints_parameter_counts(capsys):
    from domainlm.cli import main

    try:
        main(["pretrain", "--preset", "list"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for name in ("bert-small", "electra-small", "gpt-small", "albert-small", "roberta-small"):
        assert name in out
    assert "M" in out and "generator" in out
