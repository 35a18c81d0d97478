"""Objectives as loss functions over a batch of token ids (DESIGN.md: the loop is ours).

- ``mlm``: BERT masking (Devlin et al. 2019): of ``p`` = 15% of tokens, 80% -> [MASK], 10% -> random,
  10% unchanged. Masks derive from (seed, sample index) alone (exact resume, DDP == one process).
  With sparse prediction the vocabulary projection runs on masked positions only (Cramming, Geiping &
  Goldstein 2023): at 128 tokens and a 16k vocabulary the projection is most of a small model's FLOPs.
- ``clm``: next-token prediction; transformers shifts the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100

# family -> attribute of the MLM head that maps hidden states (N, H) to logits (N, V)
MLM_HEADS = {"bert": "cls", "roberta": "lm_head", "albert": "predictions"}


@dataclass
class MaskSpec:
    mask_id: int
    vocab_size: int
    special_ids: list[int]
    probability: float = 0.15
    seed: int = 0


def sample_generator(seed: int, g: int) -> torch.Generator:
    """A generator for sample ``g`` of a run with ``seed`` (SplitMix-style mixing of the pair)."""
    x = (seed * 0x9E3779B97F4A7C15 + g * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & (2**63 - 1)
    return torch.Generator().manual_seed(x)


def mask_tokens(ids: torch.Tensor, indices, spec: MaskSpec, word_starts: torch.Tensor | None = None):
    """(B, T) ids -> (inputs, labels): labels are IGNORE except at the masked positions.

    ``indices`` are the global sample indices of the rows (the per-row random stream). With
    ``word_starts`` (B, T) bool, whole words are masked: a piece is masked iff its word's first piece is.
    """
    B, T = ids.shape
    rand = torch.stack([torch.rand(3, T, generator=sample_generator(spec.seed, int(g))) for g in indices])
    choose, kind, random_tok = rand[:, 0], rand[:, 1], rand[:, 2]  # each (B, T) in [0, 1)
    special = torch.isin(ids, torch.tensor(spec.special_ids, dtype=ids.dtype))
    if word_starts is not None:
        # every piece takes the draw of its word's first piece: index of the latest word start (B, T)
        first = torch.where(word_starts, torch.arange(T).expand(B, T), 0).cummax(dim=1).values
        choose = torch.gather(choose, 1, first)
    masked = (choose < spec.probability) & ~special
    labels = torch.where(masked, ids, torch.full_like(ids, IGNORE))
    inputs = ids.clone()
    to_mask = masked & (kind < 0.8)
    to_random = masked & (kind >= 0.8) & (kind < 0.9)
    inputs[to_mask] = spec.mask_id
    rand_ids = (random_tok * spec.vocab_size).long().clamp(max=spec.vocab_size - 1)
    inputs[to_random] = rand_ids[to_random]
    return inputs, labels


def mlm_logits(model, family: str, inputs: torch.Tensor, labels: torch.Tensor, sparse: bool):
    """Logits at the masked positions (N, V) and their targets (N,)."""
    if not sparse:
        logits = model(input_ids=inputs).logits  # (B, T, V)
        keep = labels != IGNORE
        return logits[keep], labels[keep]
    body = getattr(model, model.base_model_prefix)
    hidden = body(input_ids=inputs).last_hidden_state  # (B, T, H)
    keep = labels != IGNORE
    head = getattr(model, MLM_HEADS[family])
    return head(hidden[keep]), labels[keep]  # (N, V), (N,)


def mlm_loss(model, family: str, inputs, labels, sparse: bool = True) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over masked tokens (computed in fp32) and the number of masked tokens."""
    logits, target = mlm_logits(model, family, inputs, labels, sparse)
    return F.cross_entropy(logits.float(), target), int(target.numel())


def clm_loss(model, ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy (fp32) and the number of predicted tokens."""
    logits = model(input_ids=ids).logits  # (B, T, V)
    loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
    return loss, ids[:, 1:].numel()
