"""ModernBERT presets: sparse prediction finds the head (same loss as the dense head), the per-preset recipe
fills unset train settings, a kill -9 resume is exact, the HF folder loads in `pipeline("fill-mask")`,
and `--preset list` shows them."""

from __future__ import annotations

import json
import math

import pytest
import torch

from domainlm.pretrain import presets
from domainlm.pretrain.loop import pretrain
from domainlm.pretrain.objectives import IGNORE, MaskSpec, MLMObjective, mask_tokens
from tests.conftest import kill_after_checkpoint

TINY = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 48}
TINY_YAML = (
    "model.overrides={num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 2, intermediate_size: 48}"
)
SETS = [TINY_YAML, "speed.threads=1", "speed.bf16=off", "train.eval_batches=1", "train.log_every=1"]


def _tiny_mlm(vocab: int = 120):
    torch.manual_seed(0)
    specials = {"pad": 0, "cls": 1, "sep": 2, "mask": 3, "bos": None, "eos": None}
    return presets.build("modernbert-mini", "mlm", vocab, 64, specials, overrides=TINY).model


def test_sparse_prediction_gives_the_dense_loss_and_gradients():
    model = _tiny_mlm()
    ids = torch.randint(4, 120, (4, 32), generator=torch.Generator().manual_seed(1))
    inputs, labels = mask_tokens(ids, range(4), MaskSpec(3, 120, [0, 1, 2], 0.3, seed=0))
    assert (labels != IGNORE).sum() > 10
    sparse, dense = MLMObjective(model, "modernbert", True), MLMObjective(model, "modernbert", False)
    a = sparse(inputs, labels)
    ga = torch.autograd.grad(a, model.model.embeddings.tok_embeddings.weight)[0]
    b = dense(inputs, labels)
    gb = torch.autograd.grad(b, model.model.embeddings.tok_embeddings.weight)[0]
    assert math.isfinite(a.item()) and a.item() > 1.0
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    assert torch.allclose(ga, gb, atol=1e-6)


def test_sparse_head_is_the_models_own_head():
    """A head that skipped ModernBERT's dense+norm would still give finite losses: compare the logits."""
    from domainlm.pretrain.objectives import mlm_head

    model = _tiny_mlm().eval()
    ids = torch.randint(4, 120, (2, 16))
    with torch.no_grad():
        full = model(input_ids=ids).logits  # (2, 16, V)
        hidden = model.model(input_ids=ids).last_hidden_state
        mine = mlm_head(model, "modernbert")(hidden)
    assert torch.allclose(full, mine, atol=1e-5)


def test_recipe_fills_unset_train_settings_and_keeps_given_ones():
    from domainlm import config as cfgmod
    from domainlm.config import RunConfig

    recipe = presets.recipe_of("modernbert-mini")
    assert recipe and set(recipe) <= set(presets.RECIPE_KEYS)
    cfg = presets.with_recipe(cfgmod.load(RunConfig, None, ["model.preset=modernbert-mini"]))
    for k, v in recipe.items():
        assert getattr(cfg.train, k) == v
    # a value the user gives wins, even when it equals the generic default
    given = cfgmod.load(RunConfig, None, ["model.preset=modernbert-mini", "train.lr=1e-3"])
    assert presets.with_recipe(given).train.lr == 1e-3
    # --init-from keeps the generic defaults
    init = cfgmod.load(RunConfig, None, ["model.preset=modernbert-mini", "model.init_from=x"])
    assert presets.with_recipe(init).train.lr == RunConfig().train.lr


def test_modernbert_trains_sparse_writes_recipe_and_loads_in_fill_mask_pipeline(
    corpus_dir, bert_tokenizer, tmp_path
):
    import yaml
    from transformers import pipeline

    res = pretrain(
        corpus_dir,
        tokenizer=bert_tokenizer,
        preset="modernbert-mini",
        objective="mlm",
        budget="5m",
        max_steps=30,
        name="mb",
        runs_dir=tmp_path,
        seq_len=32,
        batch_size=8,
        overrides=[*SETS, "train.lr=3e-3", "speed.sparse_prediction=true"],
    )
    rows = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert res.steps == 30 and losses[-1] < losses[0] - 0.6  # it learns (ln V is ~5.7)
    saved = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert saved["train"]["mlm_probability"] == presets.recipe_of("modernbert-mini")["mlm_probability"]
    fill = pipeline("fill-mask", model=str(res.model_dir), tokenizer=str(res.model_dir), device="cpu")
    out = fill("The President shall be elected by the members of an electoral [MASK] .", top_k=3)
    assert len(out) == 3 and all(o["token_str"].strip() for o in out)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_modernbert_resume_after_kill_is_exact(optimizer, corpus_dir, bert_tokenizer, tmp_path):
    """kill -9 a run after its step-3 checkpoint, resume: the same loss at every step as one run (with
    either optimizer: Muon's and AdamW's states travel in one checkpoint, optim.MuonWithAdamW)."""

    kw = dict(
        corpus=str(corpus_dir),
        tokenizer=str(bert_tokenizer),
        preset="modernbert-mini",
        objective="mlm",
        budget="5m",
        max_steps=8,
        runs_dir=str(tmp_path),
        seq_len=32,
        batch_size=4,
        lr=3e-3,
        overrides=[
            *SETS,
            f"train.optimizer={optimizer}",
            "train.checkpoint_every=0s",
            "train.keep_checkpoints=20",
        ],
    )
    ref = pretrain(**kw, name="ref")
    kill_after_checkpoint(kw, "cut", 3)
    resumed = pretrain(**kw, name="cut", resume="must")

    def losses(run):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    a, b = losses(ref.run_dir), losses(resumed.run_dir)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    assert a[8] < a[1] - 0.15  # it learns (Muon: 5.69 -> 5.48 in 8 steps)
    for step in a:
        assert b[step] == a[step], step
    assert resumed.validation["loss"] == ref.validation["loss"]
    assert f"optimizer: {optimizer}" in (ref.run_dir / "config.yaml").read_text()


def test_preset_list_shows_modernbert(capsys):
    from domainlm.cli import main

    try:
        main(["pretrain", "--preset", "list"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for name in ("modernbert-mini", "modernbert-small"):
        assert name in out


def test_modernbert_exports_to_onnx_matching_torch(bert_tokenizer, tmp_path):
    from domainlm.export import export
    from domainlm.tokens.tokenizer import load_tokenizer, special_ids

    tok = load_tokenizer(bert_tokenizer)
    torch.manual_seed(0)
    model = presets.build("modernbert-mini", "mlm", len(tok), 128, special_ids(tok), overrides=TINY).model
    model.save_pretrained(str(tmp_path / "hf"))
    tok.save_pretrained(str(tmp_path / "hf"))
    res = export(tmp_path / "hf", "onnx", tmp_path / "onnx")
    assert (tmp_path / "onnx" / "model.onnx").is_file() and res.task == "fill-mask"
    assert res.check["max_abs_diff"] < 1e-4 and res.check["metric_drop"] == 0.0


def test_validation_masks_at_15_percent_whatever_the_training_rate():
    """A run trained at 40% is scored on the same positions as one trained at 15%."""
    from domainlm.pretrain.metrics import EVAL_MASK_PROBABILITY, lm_metrics

    class Blocks:  # the two members lm_metrics reads
        n_blocks = 8

        def batch(self, indices):
            g = torch.Generator().manual_seed(7)
            return torch.randint(4, 120, (8, 64), generator=g)[list(indices)]

    model = _tiny_mlm().eval()
    out = {}
    with torch.no_grad():
        for p in (0.15, 0.4):
            spec = MaskSpec(3, 120, [0, 1, 2], p, seed=0)
            out[p] = lm_metrics(model, "modernbert", "mlm", Blocks(), spec, 4, 2)
    assert EVAL_MASK_PROBABILITY == 0.15
    assert out[0.15] == out[0.4]
    assert 0.10 * 8 * 64 < out[0.4]["masked_tokens"] < 0.20 * 8 * 64
