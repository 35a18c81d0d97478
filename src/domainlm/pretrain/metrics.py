"""Validation metrics of a language model on token blocks: the names, their definitions, the fixed seed.

The training loop logs an objective's metrics as ``val_NAME`` (``Objective.metrics``); ``evaluate``
writes the same definitions into ``eval.json`` (an ELECTRA generator's under ``generator_NAME``). Each
name has one definition, in ``METRICS``; the computations live with the objectives (objectives.py).
"""

from __future__ import annotations

EVAL_SEED = 1234  # fixed masks for every evaluation, so runs compare on the same positions
# ... at a fixed rate: a run trained with 40% masking (Wettig et al. 2023) is scored on the same 15%
EVAL_MASK_PROBABILITY = 0.15

# name -> definition (one per name; tests check that every logged and evaluated metric is here)
METRICS: dict[str, str] = {
    "loss": "mean cross-entropy per predicted token: masked tokens (MLM, an ELECTRA generator) or next "
    "tokens (CLM), on EVAL_SEED masks",
    "accuracy": "share of masked tokens whose top-1 prediction is the original token",
    "masked_tokens": "masked tokens scored by loss/accuracy",
    "perplexity": "exp(loss) of a causal LM, per token",
    "tokens": "next-token predictions scored by a causal LM's loss",
    "disc_loss": "ELECTRA discriminator: mean binary cross-entropy of original/replaced over non-special "
    "tokens",
    "disc_accuracy": "ELECTRA discriminator: share of non-special tokens labelled right (original or "
    "replaced); answering 'original' everywhere scores 1 - disc_replaced_fraction",
    "disc_replaced_f1": "ELECTRA discriminator: F1 of the 'replaced' class over non-special tokens",
    "disc_replaced_fraction": "share of non-special tokens that the corruption replaced",
    "disc_tokens": "non-special tokens scored by the disc_* metrics",
}


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
    """Loss and accuracy (masked LM) or loss and perplexity (``objective="clm"``) over the first blocks.

    Call under ``torch.no_grad()`` (and autocast if wanted). Masks use EVAL_SEED and
    EVAL_MASK_PROBABILITY, not the run's seed and masking rate.
    """
    import dataclasses

    from domainlm.pretrain.objectives import causal_lm_metrics, masked_lm_metrics

    if objective == "clm":
        return causal_lm_metrics(model, blocks, batch_size, n_batches)
    spec = dataclasses.replace(mask_spec, seed=EVAL_SEED, probability=EVAL_MASK_PROBABILITY)
    return masked_lm_metrics(model, family, blocks, spec, batch_size, n_batches, sparse)
