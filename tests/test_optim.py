"""train.optimizer: Muon takes the hidden matrices and AdamW the rest, and the pair saves and restores as
one optimizer. (A kill -9 resume of a Muon run is exact: tests/test_modernbert.py; two DDP processes equal
one: tests/test_ddp.py.)"""

from __future__ import annotations

import json

import torch

from domainlm.config import TrainConfig
from domainlm.pretrain import checkpoint, presets
from domainlm.pretrain.optim import MuonWithAdamW, make_optimizer
from tests.test_modernbert import _tiny_mlm


def test_muon_takes_the_hidden_matrices_and_adamw_the_embeddings_head_norms_and_biases():
    model = _tiny_mlm()
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
    model = _tiny_mlm()
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


def test_every_lookup_table_and_bias_stays_with_adamw_in_every_family():
    """GPT-2's position table (wpe), T5's relative-position buckets and XLNet's (heads, head_dim) biases
    are 2-D but not hidden matrices."""
    specials = {"pad": 0, "cls": 1, "sep": 2, "mask": 3, "bos": 4, "eos": 5}
    for preset, objective in [("gpt-mini", "clm"), ("t5-mini", "span"), ("xlnet-mini", "plm")]:
        model = presets.build(preset, objective, 200, 64, specials).model
        muon, _ = make_optimizer(model, TrainConfig(optimizer="muon")).parts
        in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
        tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
        assert tables and not tables & in_muon, preset
        named = dict(model.named_parameters())
        assert not [n for n, p in named.items() if id(p) in in_muon and n.endswith("bias")], preset
        assert in_muon, preset
