"""Validation metrics of a language model on token blocks: the names, their definitions, the fixed seed.

The training loop logs an objective's metrics as ``val_NAME`` (``Objective.metrics``); ``evaluate``
writes the same definitions into ``eval.json`` (an ELECTRA generator's under ``generator_NAME``). Each
name has one definition, in ``METRICS``; the computations live with the objectives (objectives.py).
"""

from __future__ import annotations

from domainlm.errors import resolve

EVAL_SEED = 1234  # fixed masks for every evaluation, so runs compare on the same positions
# ... at a fixed rate: a run trained with 40% masking (Wettig et al. 2023) is scored on the same 15%
EVAL_MASK_PROBABILITY = 0.15

# name -> definition (one per name; tests check that every logged and evaluated metric is here)
METRICS: dict[str, str] = {
    "loss": "mean cross-entropy (nats) per predicted token, on EVAL_SEED draws: masked tokens (MLM, an "
    "ELECTRA generator), next tokens (CLM, the RNN baseline), XLNet's permutation targets (the last 1/K "
    "of a random factorisation order, objectives.PLM_K) or T5's span-corruption targets (sentinels, the "
    "dropped spans, eos). Comparable only within one objective and tokenizer; T5's is not a "
    "language-model likelihood at all",
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
    "targets": "tokens predicted by an XLNet (permutation) or T5 (span corruption) loss",
    "bits_per_char": "total negative log-likelihood in bits of held-out documents (each after an "
    "end-of-text token, its own end not predicted) / their characters, left to right: causal LMs, the "
    "RNN baseline, XLNet in natural order, the n-gram; comparable across families and tokenizers "
    "(evaluate/bits.py)",
    "bpc_chars": "characters scored by bits_per_char",
    "bpc_tokens": "tokens predicted for bits_per_char",
    "bpc_docs": "documents scored by bits_per_char (the first --max-docs of the split)",
    "pppl_loss": "pseudo-log-likelihood (Salazar et al. 2020: each token masked in turn) per token, nats",
    "pppl_token": "exp(pppl_loss): pseudo-perplexity per token",
    "pppl_word": "exp(pseudo-log-likelihood / whitespace words)",
    "pppl_bits_per_char": "pseudo-log-likelihood in bits / characters of the same documents: masked LMs' "
    "per-character number, comparable among masked LMs, not with bits_per_char (it is not a likelihood)",
    "pppl_docs": "documents scored by the pppl_* metrics",
    "pppl_tokens": "tokens scored by the pppl_* metrics",
    "pppl_words": "whitespace words of the documents scored by the pppl_* metrics",
    "intrinsic": "eval.json: which number of the run compares across families (bits_per_char, "
    "pppl_bits_per_char, or none for T5's span corruption)",
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
    tok=None,
) -> dict:
    """The validation metrics the training loop logs for ``objective`` (``Objective.metrics``), on the
    first blocks with EVAL_SEED draws, not the run's seed: loss and accuracy (masked LM), loss and
    perplexity (causal LM), loss per target (XLNet; T5, which needs ``tok`` for its sentinels).

    Call under ``torch.no_grad()`` (and autocast if wanted). Masks use EVAL_SEED and
    EVAL_MASK_PROBABILITY, not the run's seed and masking rate. ELECTRA pairs: objectives.electra_metrics.
    """
    import dataclasses

    from domainlm.pretrain.objectives import OBJECTIVES, Setup

    spec = dataclasses.replace(mask_spec, seed=EVAL_SEED, probability=EVAL_MASK_PROBABILITY)
    objective_cls = resolve("objective", objective, OBJECTIVES)
    setup = Setup(model, family, spec, None, sparse, EVAL_SEED, tok)
    return objective_cls(setup).metrics(blocks, batch_size, n_batches, EVAL_SEED)
