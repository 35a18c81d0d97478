"""evaluate: how good is a language model, comparably across runs.

    domainlm evaluate runs/A [runs/B ...]

Masked LMs: masked-token loss and accuracy on the validation split with deterministic masks (the same
positions for every model sharing a tokenizer). Causal LMs: loss and perplexity per token. Writes
``eval.json`` in each run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

EVAL_SEED = 1234  # fixed masks for every evaluation, so runs compare on the same positions


def lm_metrics(model, family: str, objective: str, blocks, mask_spec, batch_size: int, n_batches: int,
               sparse: bool = True) -> dict:
    """Loss and accuracy (MLM) or loss and perplexity (CLM) over the first blocks of ``blocks``.

    Call under ``torch.no_grad()`` (and autocast if wanted). Masks use EVAL_SEED, not the run's seed.
    """
    import dataclasses

    import torch.nn.functional as F

    from .objectives import clm_loss, mask_tokens, mlm_logits

    n = min(blocks.n_blocks, batch_size * n_batches)
    total_loss = 0.0
    count = correct = 0
    spec = dataclasses.replace(mask_spec, seed=EVAL_SEED)
    for start in range(0, n, batch_size):
        indices = range(start, min(n, start + batch_size))
        ids = blocks.batch(indices)
        if objective == "clm":
            loss, k = clm_loss(model, ids)
            total_loss += loss.item() * k
            count += k
        else:
            inputs, labels = mask_tokens(ids, indices, spec)
            logits, target = mlm_logits(model, family, inputs, labels, sparse)
            total_loss += F.cross_entropy(logits.float(), target, reduction="sum").item()
            correct += int((logits.argmax(-1) == target).sum())
            count += int(target.numel())
    loss = total_loss / max(1, count)
    if objective == "clm":
        return {"loss": loss, "perplexity": math.exp(min(loss, 50)), "tokens": count}
    return {"loss": loss, "accuracy": correct / max(1, count), "masked_tokens": count}


@dataclass
class FillMask:
    token: str
    score: float
    token_id: int


def fill_mask(model, tok, text: str, top_k: int = 5) -> list[FillMask]:
    """Top-k fillers of the single mask in ``text``, computed by domainlm itself (not the pipeline)."""
    import torch

    if tok.mask_token is None or tok.mask_token not in text:
        raise UserError(f"text has no mask token {tok.mask_token!r}", f"Write {tok.mask_token} where the gap is")
    enc = tok(text, return_tensors="pt")
    pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(**enc).logits[0, pos].float()  # (V,)
    model.train(was_training)
    probs = logits.softmax(-1)
    top = probs.topk(top_k)
    return [FillMask(tok.decode([int(i)]).strip(), float(s), int(i)) for s, i in zip(top.values, top.indices, strict=True)]


def _load_run(run: Path):
    import yaml

    from .config import RunConfig

    if not (run / "config.yaml").is_file() or not (run / "model" / "config.json").is_file():
        raise UserError(f"'{run}' is not a finished run folder (config.yaml and model/ expected)",
                        "Pass a folder made by `domainlm pretrain`")
    cfg = RunConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    return cfg


def evaluate(runs: list[str | Path], eval_batches: int | None = None) -> dict[str, dict]:
    """Evaluate each run's ``model/`` on its corpus's validation split; write ``eval.json`` in each."""
    import contextlib

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from . import machine
    from .data import Blocks
    from .encode import encode_split
    from .objectives import MaskSpec
    from .tokenizer import load_tokenizer
    from .train import _block_spec, _sep_id

    if not runs:
        raise UserError("no run given", "Pass one or more run folders: domainlm evaluate runs/NAME")
    out: dict[str, dict] = {}
    for run in map(Path, runs):
        cfg = _load_run(run)
        tok = load_tokenizer(run / "model")
        objective = cfg.model.objective
        loader = AutoModelForCausalLM if objective == "clm" else AutoModelForMaskedLM
        model = loader.from_pretrained(str(run / "model"), local_files_only=True)
        model.eval()
        family = model.config.model_type
        sep = _sep_id(objective, tok)
        shard = encode_split(cfg.corpus, run / "tokenizer", "validation", sep)
        if len(shard.tokens) < cfg.train.seq_len:
            shard = encode_split(cfg.corpus, run / "tokenizer", "train", sep)
        blocks = Blocks(shard, _block_spec(objective, tok, cfg.train.seq_len), 0, shuffle=False)
        specials = [i for i in {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.bos_token_id,
                                tok.eos_token_id} if i is not None]
        spec = MaskSpec(tok.mask_token_id if tok.mask_token_id is not None else -1, len(tok), specials,
                        cfg.train.mlm_probability, EVAL_SEED)
        bf16 = machine.resolve_bf16(cfg.speed.bf16)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            m = lm_metrics(model, family, objective, blocks, spec, cfg.train.batch_size,
                           eval_batches or cfg.train.eval_batches, sparse=cfg.speed.sparse_prediction)
        result = {"format_version": 1, "run": str(run), "objective": objective, "split": "validation",
                  "mask_seed": EVAL_SEED, "bf16": bf16, **m}
        (run / "eval.json").write_text(json.dumps(result, indent=2))
        out[str(run)] = result
    return out
