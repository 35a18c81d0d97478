"""The optimizer of a pretraining run (``train.optimizer``).

``adamw``: fused AdamW, no weight decay on biases and norms; betas and eps from the config (RoBERTa's).

``muon``: Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks") on the
hidden weight matrices, AdamW on the rest: embeddings, the output head tied to them, norms and biases,
as Muon's authors prescribe. Muon's update is Nesterov momentum orthogonalised by five Newton-Schulz
iterations (``torch.optim.Muon``), scaled to AdamW's update size (0.2 * sqrt(max(rows, cols)); Liu et al.
2025, "Muon is Scalable for LLM Training"), so both halves share the run's learning rate and schedule.

Measured (RESULTS.md, time_to_quality, "the optimizer"): on the demo corpus at 1.4M tokens Muon learns
more per token than AdamW (two seeds, 59.5% masked accuracy against 57.0%), but its Newton-Schulz
iterations (~14 GFLOP a step, as much arithmetic as the forward and backward pass of modernbert-mini on
1,024 tokens) make each step 1.7x as long on 2 CPU cores. So on the constitution it scores 48.4% against
57.0% in 2 minutes, 61.7% against 62.0% in 5, and 64.0% against 62.2% in 10: once AdamW's many passes over
a small corpus stop lowering the held-out loss, the better step is worth more than the extra steps (on
the seven times larger licences, 10 minutes are level: 59.4% against 59.5%). A
larger batch spreads the iterations' cost but takes Muon's gain with it (batch 16: 52.4% against AdamW's
53.1% at equal tokens). The default stays ``adamw`` (one switch-over point, few seeds).
"""

from __future__ import annotations

from typing import Any

import torch


def make_optimizer(model: torch.nn.Module, t) -> Any:
    """The optimizer ``t.optimizer`` names, over ``model``'s trainable parameters (``t``: TrainConfig)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if t.optimizer == "muon":
        outside = _embedding_params(model)
        # (XLNet's r_w_bias and kin are (heads, head_dim) biases, not matrices)
        hidden = [(n, p) for n, p in named if p.ndim == 2 and id(p) not in outside and not n.endswith("bias")]
        chosen = {id(p) for _, p in hidden}
        rest = [(n, p) for n, p in named if id(p) not in chosen]
        muon = torch.optim.Muon(
            [p for _, p in hidden],
            lr=t.lr,
            weight_decay=t.weight_decay,
            momentum=t.muon_momentum,
            adjust_lr_fn="match_rms_adamw",
        )
        return MuonWithAdamW(muon, _adamw(rest, t))
    return _adamw(named, t)


def _adamw(named: list[tuple[str, torch.nn.Parameter]], t) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for n, p in named:
        (no_decay if p.ndim < 2 or "norm" in n.lower() or n.endswith(".bias") else decay).append(p)
    # fused AdamW (one kernel over all parameters; CPU support since torch 2.4) saves memory passes
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=t.lr,
        betas=(t.adam_beta1, t.adam_beta2),
        eps=t.adam_eps,
        fused=True,
    )


def _embedding_params(model: torch.nn.Module) -> set[int]:
    """ids of every lookup table (``nn.Embedding``: tokens, positions, GPT-2's ``wpe``, T5's relative
    position buckets), of the input and output embeddings of every (sub)model, and of any parameter named
    as an embedding: lookups and vocabulary heads are not hidden layers, and Muon is not for them."""
    ids = {id(p) for n, p in model.named_parameters() if "embed" in n.lower()}
    ids |= {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    for m in model.modules():
        for get in ("get_input_embeddings", "get_output_embeddings"):
            fn = getattr(m, get, None)
            if fn is None:
                continue
            try:
                layer = fn()
            except (NotImplementedError, AttributeError):
                continue
            if getattr(layer, "weight", None) is not None:
                ids.add(id(layer.weight))
    return ids


class MuonWithAdamW:
    """Muon over the hidden matrices and AdamW over the rest, seen by the loop as one optimizer: one list
    of ``param_groups`` (the schedule sets their lr), ``step``, ``zero_grad``, and one state dict whose
    parameter ids run on from Muon's into AdamW's, so checkpoint.py saves and restores it as any other."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer):
        self.parts = (muon, adamw)

    @property
    def param_groups(self) -> list[dict]:
        return [g for part in self.parts for g in part.param_groups]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for k, part in enumerate(self.parts):
            sd = part.state_dict()
            for pid, st in sd["state"].items():
                state[pid + offset] = st
            for g in sd["param_groups"]:
                groups.append({**g, "params": [i + offset for i in g["params"]], "part": k})
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        offset = 0
        for k, part in enumerate(self.parts):
            groups = [g for g in sd["param_groups"] if g["part"] == k]
            ids = [i for g in groups for i in g["params"]]
            part.load_state_dict(
                {
                    "state": {i - offset: sd["state"][i] for i in ids if i in sd["state"]},
                    "param_groups": [
                        {key: v for key, v in g.items() if key != "part"}
                        | {"params": [i - offset for i in g["params"]]}
                        for g in groups
                    ],
                }
            )
            offset += len(ids)
