"""train.optimizer: Muon takes the hidden matrices and AdamW the rest; the pair saves and restores as one
optimizer (a kill -9 resume is exact), and a Muon run learns."""

from __future__ import annotations

import json

import torch

from domainlm.config import TrainConfig
from domainlm.pretrain import checkpoint, presets
from domainlm.pretrain.loop import pretrain
from domainlm.pretrain.optim import MuonWithAdamW, make_optimizer
from tests.conftest import kill_after_checkpoint
from tests.test_modernbert import SETS, TINY


def _tiny(preset: str = "modernbert-mini", objective: str = "mlm"):
    torch.manual_seed(0)
    specials = {"pad": 0, "cls": 1, "sep": 2, "mask": 3, "bos": None, "eos": None}
    return presets.build(preset, objective, 120, 64, specials, overrides=TINY).model


def test_muon_takes_the_hidden_matrices_and_adamw_the_embeddings_head_norms_and_biases():
    model = _tiny()
    opt = make_optimizer(model, TrainConfig(optimizer="muon"))
    assert isinstance(opt, MuonWithAdamW)
    muon, adamw = opt.parts
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    in_adamw = {id(p) for g in adamw.param_groups for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert in_muon and not in_muon & in_adamw
    assert in_muon | in_adamw == {id(p) for p in model.parameters()}
    embedding = model.get_input_embeddings().weight
    assert id(embedding) in in_adamw and model.get_output_embeddings().weight is embedding  # the tied head
    assert all(model.get_parameter(names[i]).ndim == 2 for i in in_muon)
    assert any("attn.Wqkv" in names[i] for i in in_muon) and any("mlp.Wo" in names[i] for i in in_muon)
    assert all(p.ndim < 2 or "embed" in names[id(p)] for g in adamw.param_groups for p in g["params"])
    # the schedule sets the lr of every group, Muon's and AdamW's
    assert len(opt.param_groups) == len(muon.param_groups) + len(adamw.param_groups)
    assert TrainConfig().optimizer == "adamw"
    assert isinstance(make_optimizer(model, TrainConfig()), torch.optim.AdamW)


def test_the_pair_state_dict_round_trips_into_a_fresh_pair():
    model = _tiny()
    t = TrainConfig(optimizer="muon")
    opt = make_optimizer(model, t)
    ids = torch.randint(4, 120, (2, 16))
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    sd = opt.state_dict()
    n = sum(len(g["params"]) for g in sd["param_groups"])
    assert sorted(sd["state"]) == list(range(n))  # one id space over both parts
    # as a checkpoint stores it: tensors to safetensors, the rest (groups, scalars) through JSON
    tensors, rest = checkpoint.optimizer_tensors(opt)
    fresh = make_optimizer(model, t)
    checkpoint.load_optimizer(fresh, tensors, json.loads(json.dumps(rest)))
    for a, b in zip(opt.parts, fresh.parts, strict=True):
        sa, sb = a.state_dict()["state"], b.state_dict()["state"]
        assert sa.keys() == sb.keys()
        for pid in sa:
            for k, v in sa[pid].items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb[pid][k])), (pid, k)


def test_a_muon_run_learns_and_resumes_exactly_after_kill(corpus_dir, bert_tokenizer, tmp_path):
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
        overrides=[*SETS, "train.optimizer=muon", "train.checkpoint_every=0s", "train.keep_checkpoints=20"],
    )
    ref = pretrain(**kw, name="ref")
    kill_after_checkpoint(kw, "cut", 3)
    resumed = pretrain(**kw, name="cut", resume="must")

    def losses(run):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    a, b = losses(ref.run_dir), losses(resumed.run_dir)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    assert a[8] < a[1] - 0.15  # it learns (5.69 -> 5.48 in 8 steps)
    for step in a:
        assert b[step] == a[step], step
    assert resumed.validation["loss"] == ref.validation["loss"]
    saved = (ref.run_dir / "config.yaml").read_text()
    assert "optimizer: muon" in saved
