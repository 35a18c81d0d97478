"""`speed.compile`: regional compilation (`pretrain.loop.compile_blocks`).

The fast tests check which modules are compiled (nothing runs, so nothing compiles). The slow one trains
a tiny ModernBERT compiled: kill -9 and resume give the uninterrupted run's losses, and its losses follow
the eager run's.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from domainlm.config import RunConfig
from domainlm.pretrain import presets
from domainlm.pretrain.loop import AUTO_COMPILE_S, compile_blocks, compile_wanted, pretrain
from tests.conftest import kill_after_checkpoint, metric_rows
from tests.test_modernbert import SETS as MODERNBERT_SETS  # tiny ModernBERT, one thread, fp32

TINY = {"num_hidden_layers": 3, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 48}


def _compiled(m: torch.nn.Module) -> bool:
    return m._compiled_call_impl is not None


def test_each_encoder_layer_is_compiled_in_place_and_the_rest_stays_eager():
    specials = {"pad": 0, "cls": 1, "sep": 2, "mask": 3, "bos": None, "eos": None}
    model = presets.build("modernbert-mini", "mlm", 120, 64, specials, overrides=TINY).model
    names = list(model.state_dict())

    assert compile_blocks(model) == (model, True)
    layers = list(model.model.layers)
    assert len(layers) == 3 and all(_compiled(layer) for layer in layers)
    inside = {id(m) for layer in layers for m in layer.modules()}
    eager = [m for m in model.modules() if id(m) not in inside]
    assert eager and not any(_compiled(m) for m in eager)  # embeddings, final norm, head, decoder
    assert list(model.state_dict()) == names  # checkpoints and the saved model keep their names


def test_a_list_inside_a_block_is_compiled_with_its_block():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.parts = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)])

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ModuleList([Block(), Block()]))
    compile_blocks(model)
    blocks = list(model[1])
    assert all(_compiled(b) for b in blocks)
    assert not any(_compiled(p) for b in blocks for p in b.parts)
    assert not _compiled(model[0])


def test_a_model_without_repeated_blocks_is_compiled_whole_only_when_asked():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    out, compiled = compile_blocks(model)
    assert compiled and out is not model and out._orig_mod is model  # torch.compile's wrapper
    # speed.compile=auto (whole=False) leaves it eager: only models with repeated layers were measured
    assert compile_blocks(model, whole=False) == (model, False)


CPU, GPU = SimpleNamespace(type="cpu"), SimpleNamespace(type="cuda")


@pytest.mark.parametrize(
    "speed, train, world, device, warm, want",
    [
        ({}, {"budget": "3m"}, 1, CPU, False, True),  # the default is auto; the demo's budget
        ({}, {"budget": "30m"}, 1, CPU, False, True),
        ({}, {"budget": "2m59s"}, 1, CPU, False, False),  # too short to pay for a cold compile
        ({}, {"budget": "2m"}, 1, CPU, True, True),  # short, but the cache holds the model's code
        ({}, {"budget": "30s"}, 1, CPU, True, True),
        ({}, {"budget": "30m", "max_steps": 10}, 1, CPU, False, False),  # a step count stops it: tests
        ({}, {"budget": "30m", "max_steps": 10}, 1, CPU, True, False),
        ({}, {"budget": "30m", "max_tokens": 10_000}, 1, CPU, False, False),
        ({}, {"budget": "30m"}, 2, CPU, True, False),  # torchrun: not measured, left eager
        ({}, {"budget": "30m"}, 1, GPU, True, False),
        ({"compile": True}, {"budget": "1m", "max_steps": 10}, 2, GPU, False, True),  # YAML's true is on
        ({"compile": "off"}, {"budget": "1h"}, 1, CPU, True, False),
    ],
)
def test_speed_compile_resolves_auto_from_the_config_and_the_cache(speed, train, world, device, warm, want):
    cfg = RunConfig(speed=speed, train=train)
    assert compile_wanted(cfg, SimpleNamespace(world=world, device=device), warm=warm) is want
    assert AUTO_COMPILE_S == 180.0


def test_a_compiled_run_marks_the_cache_warm_for_the_same_model_only(
    corpus_dir, bert_tokenizer, tmp_path, monkeypatch
):
    """The marker is written after a compiled run's first step, inside the compile cache's folder, and
    names the model's layers and batch shape: the next short run of the same model compiles, on another
    tokenizer too (the compiled layers never see the vocabulary), and another shape does not.
    (compile_blocks is stubbed: nothing is compiled.)"""
    import json

    from domainlm.pretrain import loop
    from domainlm.tokens.tokenizer import train_tokenizer

    other_tok = tmp_path / "tok-200"
    train_tokenizer(corpus_dir, other_tok, kind="wordpiece", vocab_size=200, style="bert")

    def compiled(res) -> bool:
        return json.loads((res.run_dir / "train_summary.json").read_text())["compiled"]

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setattr(loop, "compile_blocks", lambda module, whole: (module, True))
    sets = ["speed.threads=1", "speed.bf16=off", "train.eval_batches=1", "train.reserve_fixed_s=0"]
    kw = _tiny_run(corpus_dir, bert_tokenizer, tmp_path, preset="bert-tiny", budget="2s", overrides=sets)
    steps = kw | {"max_steps": 2}
    assert not compiled(pretrain(**steps, name="steps"))  # auto with a step count: eager
    assert not compiled(pretrain(**kw, name="cold"))  # auto at 2 s: eager, the cache is cold
    assert not (tmp_path / "inductor" / "domainlm-compiled").exists()  # no marker of eager runs
    assert compiled(pretrain(**(steps | {"overrides": [*sets, "speed.compile=on"]}), name="warmer"))
    assert len(list((tmp_path / "inductor" / "domainlm-compiled").iterdir())) == 1
    assert compiled(pretrain(**kw, name="warm"))  # the same model and shape: auto compiles 2 s
    other = pretrain(**(kw | {"tokenizer": str(other_tok)}), name="vocab")
    assert compiled(other)  # another vocabulary, the same layers: warm
    assert (
        json.loads((other.run_dir / "model" / "config.json").read_text())["vocab_size"]
        != json.loads((tmp_path / "warm" / "model" / "config.json").read_text())["vocab_size"]
    )
    assert len(list((tmp_path / "inductor" / "domainlm-compiled").iterdir())) == 1  # one key for both
    assert not compiled(pretrain(**(kw | {"batch_size": 2}), name="other"))  # another shape: cold
    wider = [*sets, "model.dropout=0.1"]
    assert not compiled(pretrain(**(kw | {"overrides": wider}), name="dropout"))  # other layers: cold


def _tiny_run(corpus_dir, bert_tokenizer, tmp_path, **kw) -> dict:
    """pretrain()'s arguments for a tiny masked-LM run: 32-token rows, batch 4, into tmp_path."""
    base = dict(
        corpus=str(corpus_dir), tokenizer=str(bert_tokenizer), objective="mlm", runs_dir=str(tmp_path)
    )
    return base | dict(seq_len=32, batch_size=4) | kw


def _losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in metric_rows(run_dir) if "loss" in r}


@pytest.mark.slow  # compiles a tiny model in three processes: ~1-2 minutes on a 2-core machine
def test_a_compiled_run_resumes_exactly_and_follows_the_eager_run(corpus_dir, bert_tokenizer, tmp_path):
    sets = [*MODERNBERT_SETS, "train.checkpoint_every=0s", "train.keep_checkpoints=20"]
    kw = _tiny_run(corpus_dir, bert_tokenizer, tmp_path, preset="modernbert-mini", budget="10m", max_steps=8)
    kw |= dict(lr=3e-3, overrides=[*sets, "speed.compile=true"])
    ref = pretrain(**kw, name="ref")
    kill_after_checkpoint(kw, "cut", 3)
    resumed = pretrain(**kw, name="cut", resume="must")
    eager = pretrain(**(kw | {"overrides": sets}), name="eager")

    a, b, e = _losses(ref.run_dir), _losses(resumed.run_dir), _losses(eager.run_dir)
    assert sorted(a) == sorted(b) == sorted(e) == list(range(1, 9))
    for step in a:
        assert b[step] == a[step], step  # compiled kernels: bitwise the same after the resume
        assert a[step] == pytest.approx(e[step], rel=1e-3), step  # fused kernels round differently
    assert resumed.validation["loss"] == ref.validation["loss"]


def test_the_compile_in_the_first_step_is_setup_and_leaves_the_warm_up_to_the_steps(
    corpus_dir, bert_tokenizer, tmp_path, monkeypatch
):
    """A cold compile takes ~30 s of the first step. Counted by the schedule's clock, it would pass the
    whole warm-up before the second step. Here a 3 s sleep stands in for it (nothing is compiled)."""
    import time as time_mod

    from domainlm.pretrain import loop

    first = []

    def slow_first_step(run, state, lr, real=loop.train_step):
        if not first:
            first.append(lr)
            time_mod.sleep(3.0)
        return real(run, state, lr)

    monkeypatch.setattr(loop, "compile_blocks", lambda module, whole: (module, True))
    monkeypatch.setattr(loop, "train_step", slow_first_step)
    sets = ["speed.compile=on", "speed.threads=1", "speed.bf16=off", "train.log_every=1"]
    sets += ["train.eval_batches=1", "train.warmup=0.2", "train.reserve_fixed_s=0"]
    kw = _tiny_run(corpus_dir, bert_tokenizer, tmp_path, preset="bert-tiny", budget="10s", lr=1e-3)
    res = pretrain(**kw, name="timed", overrides=sets)
    lrs = {r["step"]: r["lr"] for r in metric_rows(res.run_dir) if "lr" in r}
    assert res.steps > 10 and lrs[2] < 0.2e-3  # step 2 is still early in the warm-up
    assert max(lrs.values()) > 0.9e-3  # and the warm-up does reach the peak, later
    assert res.seconds < 11.0  # the budget paid for the first step: the run still ended at its 10 s
