"""Validation metrics of a language model on token blocks, shared by the training loop and `evaluate`."""

from __future__ import annotations

import math

EVAL_SEED = 1234  # fixed masks for every evaluation, so runs compare on the same positions
# ... at a fixed rate: a run trained with 40% masking (Wettig et al. 2023) is scored on the same 15%
EVAL_MASK_PROBABILITY = 0.15


def lm_metrics(
    model,
    family: str,
    objective: str,
    blocks,
    mask_spec,
    batch_size: int,
    n_batches: int,
    sparse: bool = True,
) -> dict:
    """Loss and accuracy (MLM) or loss and perplexity (CLM) over the first blocks of ``blocks``.

    Call under ``torch.no_grad()`` (and autocast if wanted). Masks use EVAL_SEED and
    EVAL_MASK_PROBABILITY, not the run's seed and masking rate.
    """
    import dataclasses

    import torch.nn.functional as F

    from domainlm.pretrain.objectives import MLM_HEADS, clm_loss, mask_tokens, mlm_logits

    n = min(blocks.n_blocks, batch_size * n_batches)
    total_loss = 0.0
    count = correct = 0
    spec = dataclasses.replace(mask_spec, seed=EVAL_SEED, probability=EVAL_MASK_PROBABILITY)
    sparse = sparse and family in MLM_HEADS
    device = next(model.parameters()).device  # masks are drawn on the CPU, then moved with the batch
    for start in range(0, n, batch_size):
        indices = range(start, min(n, start + batch_size))
        ids = blocks.batch(indices)
        if objective == "clm":
            loss, k = clm_loss(model, ids.to(device))
            total_loss += loss.item() * k
            count += k
        else:
            inputs, labels = mask_tokens(ids, indices, spec)
            logits, target = mlm_logits(model, family, inputs.to(device), labels.to(device), sparse)
            total_loss += F.cross_entropy(logits.float(), target, reduction="sum").item()
            correct += int((logits.argmax(-1) == target).sum())
            count += int(target.numel())
    loss = total_loss / max(1, count)
    if objective == "clm":
        return {"loss": loss, "perplexity": math.exp(min(loss, 50)), "tokens": count}
    return {"loss": loss, "accuracy": correct / max(1, count), "masked_tokens": count}
