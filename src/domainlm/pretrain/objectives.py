"""Objectives as loss functions over a batch of token ids (DESIGN.md: the loop is ours).

- ``mlm``: BERT masking (Devlin et al. 2019): of ``p`` = 15% of tokens, 80% -> [MASK], 10% -> random,
  10% unchanged. Masks derive from (seed, sample index) alone (exact resume, DDP == one process).
  With sparse prediction the vocabulary projection runs on masked positions only (Cramming, Geiping &
  Goldstein 2023): at 128 tokens and a 16k vocabulary the projection is most of a small model's FLOPs.
  Whole-word masking (``word_start_table``) works for WordPiece (``##`` continues a word), byte-level
  BPE (``Ġ`` starts a word) and Unigram/Metaspace (``▁`` starts a word).
- ``electra``: replaced-token detection (Clark et al. 2020, "ELECTRA"): a small MLM generator fills the
  masked positions with samples; the discriminator labels every token original/replaced. Loss =
  generator MLM loss + 50 x discriminator loss (the paper's lambda = 50); the two share embeddings.
- ``clm``: next-token prediction.

The loop wraps each objective in an ``nn.Module`` (``MLMObjective`` ...) whose ``forward`` returns a
loss *sum* and the number of predicted tokens, so that DDP can wrap it and the loop can normalise by
the global token count (DDP with N processes == one process with N times the batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100

# family -> attribute(s) of the MLM head that map hidden states (N, H) to logits (N, V), applied in order
MLM_HEADS = {
    "bert": ("cls",),
    "roberta": ("lm_head",),
    "albert": ("predictions",),
    "modernbert": ("head", "decoder"),  # dense + act + norm, then the tied projection
}

# ELECTRA's discriminator loss weight (Clark et al. 2020, section 3: lambda = 50)
ELECTRA_DISC_WEIGHT = 50.0


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


def word_start_table(tok) -> torch.Tensor:
    """(V,) bool: does token id ``i`` begin a word? Decided from the tokenizer's own piece convention.

    WordPiece marks continuations (``##ing``); byte-level BPE marks starts with ``Ġ`` (a leading space);
    Unigram/Metaspace marks starts with ``▁``. Special tokens and pure punctuation count as starts, so a
    comma is never glued to the word before it.
    """
    vocab = tok.get_vocab()  # token -> id
    size = max(len(tok), max(vocab.values()) + 1)
    table = torch.ones(size, dtype=torch.bool)
    pieces = list(vocab)
    n_hash = sum(p.startswith("##") for p in pieces)
    n_g = sum(p.startswith("Ġ") for p in pieces)
    n_meta = sum(p.startswith("▁") for p in pieces)
    specials = set(tok.all_special_tokens)
    if n_hash >= max(n_g, n_meta):
        for p, i in vocab.items():
            table[i] = not p.startswith("##")
        return table
    marker = "Ġ" if n_g >= n_meta else "▁"
    for p, i in vocab.items():
        punct = not any(c.isalnum() for c in p)
        table[i] = p.startswith(marker) or p in specials or punct
    return table


def word_starts(ids: torch.Tensor, table: torch.Tensor, special_ids: list[int] | None = None) -> torch.Tensor:
    """(B, T) ids -> (B, T) bool word starts. Position 0 always starts (a block may cut a word), and so
    does the token after a special one (a document's first word has no leading-space marker in BPE)."""
    starts = table[ids]
    starts[:, 0] = True
    if special_ids:
        after_special = torch.isin(ids[:, :-1], torch.tensor(special_ids, dtype=ids.dtype))
        starts[:, 1:] |= after_special
    return starts


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


def mlm_head(model, family: str):
    """The function mapping hidden states (N, H) to vocabulary logits (N, V)."""
    names = ("generator_predictions", "generator_lm_head") if family == "electra" else MLM_HEADS[family]
    modules = [getattr(model, n) for n in names]

    def head(h: torch.Tensor) -> torch.Tensor:
        for m in modules:
            h = m(h)
        return h

    return head


def mlm_logits(model, family: str, inputs: torch.Tensor, labels: torch.Tensor, sparse: bool):
    """Logits at the masked positions (N, V) and their targets (N,)."""
    keep = labels != IGNORE
    if not sparse:
        logits = model(input_ids=inputs).logits  # (B, T, V)
        return logits[keep], labels[keep]
    body = getattr(model, model.base_model_prefix)
    hidden = body(input_ids=inputs).last_hidden_state  # (B, T, H)
    return mlm_head(model, family)(hidden[keep]), labels[keep]  # (N, V), (N,)


def mlm_loss(model, family: str, inputs, labels, sparse: bool = True) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over masked tokens (computed in fp32) and the number of masked tokens."""
    logits, target = mlm_logits(model, family, inputs, labels, sparse)
    return F.cross_entropy(logits.float(), target), int(target.numel())


def clm_loss(model, ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy (fp32) and the number of predicted tokens."""
    logits = model(input_ids=ids).logits  # (B, T, V)
    loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
    return loss, ids[:, 1:].numel()


# ----------------------------------------------------------------------------------------------------
# objectives as modules (what the loop, DDP and torch.compile wrap)


class MLMObjective(nn.Module):
    """forward(inputs, labels) -> summed masked-token cross-entropy (fp32 scalar)."""

    def __init__(self, model, family: str, sparse: bool):
        super().__init__()
        self.model, self.family, self.sparse = model, family, sparse

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, target = mlm_logits(self.model, self.family, inputs, labels, self.sparse)
        return F.cross_entropy(logits.float(), target, reduction="sum")


class CLMObjective(nn.Module):
    """forward(ids) -> summed next-token cross-entropy (fp32 scalar) over B * (T - 1) predictions."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids=ids).logits  # (B, T, V)
        return F.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="sum"
        )


class ElectraPair(nn.Module):
    """Generator (ElectraForMaskedLM) + discriminator (ElectraForPreTraining) sharing embeddings.

    The token, position and type embeddings are one module used by both (Clark et al. 2020, 3.2:
    "we share the embeddings of the generator and discriminator"); the generator's output projection is
    tied to the shared word embeddings.
    """

    def __init__(self, generator, discriminator):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        generator.electra.embeddings = discriminator.electra.embeddings
        generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight

    @property
    def config(self):
        return self.discriminator.config


def _gumbel_sample(logits: torch.Tensor, rows: torch.Tensor, indices, seed: int) -> torch.Tensor:
    """One token per row of ``logits`` (N, V), sampled with noise from each sample's own stream.

    ``rows`` (N,) says which batch row each masked position came from; the noise of sample ``g`` comes
    from (seed, g), so the draw does not depend on how the batch was split across processes.
    """
    N, V = logits.shape
    noise = torch.empty(N, V)
    rows = rows.cpu()  # the noise is drawn on the CPU (same draws on any device)
    for r, g in enumerate(indices):
        sel = rows == r
        n = int(sel.sum())
        if n:
            noise[sel] = torch.rand(n, V, generator=sample_generator(seed ^ 0x5EED_E1EC, int(g)))
    gumbel = -torch.log(-torch.log(noise.clamp_(1e-10, 1 - 1e-7)))
    return (logits.float() + gumbel.to(logits.device)).argmax(-1)


class ElectraObjective(nn.Module):
    """forward(ids, inputs, labels, indices) -> (generator MLM loss + 50 x discriminator loss, stats).

    Means per process (not sums): ELECTRA normalises its two losses by different counts; with DDP the
    gradients of the per-process means are averaged.
    """

    def __init__(self, pair: ElectraPair, sparse: bool, seed: int):
        super().__init__()
        self.pair, self.sparse, self.seed = pair, sparse, seed

    def forward(self, ids: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor, indices: list[int]):
        gen, disc = self.pair.generator, self.pair.discriminator
        logits, target = mlm_logits(gen, "electra", inputs, labels, self.sparse)  # (N, V), (N,)
        gen_loss = F.cross_entropy(logits.float(), target)
        keep = labels != IGNORE  # (B, T)
        rows = keep.nonzero()[:, 0]
        with torch.no_grad():
            sampled = _gumbel_sample(logits.detach(), rows, indices, self.seed)  # (N,)
        disc_inputs = ids.clone()
        disc_inputs[keep] = sampled
        replaced = (disc_inputs != ids).float()  # (B, T); a correct sample counts as original
        disc_logits = disc(input_ids=disc_inputs).logits  # (B, T)
        disc_loss = F.binary_cross_entropy_with_logits(disc_logits.float(), replaced)
        loss = gen_loss + ELECTRA_DISC_WEIGHT * disc_loss
        return loss, gen_loss.detach(), disc_loss.detach()


def electra_metrics(
    pair: ElectraPair, blocks, mask_spec: MaskSpec, batch_size: int, n_batches: int, mask_seed: int
) -> dict:
    """Generator masked-token loss/accuracy and discriminator replaced-token accuracy, fixed masks."""
    import dataclasses

    spec = dataclasses.replace(mask_spec, seed=mask_seed)
    obj = ElectraObjective(pair, True, mask_seed)
    n = min(blocks.n_blocks, batch_size * n_batches)
    tot = {"loss": 0.0, "disc_loss": 0.0, "correct": 0, "masked": 0, "disc_correct": 0, "tokens": 0}
    device = next(pair.parameters()).device
    for start in range(0, n, batch_size):
        indices = list(range(start, min(n, start + batch_size)))
        ids = blocks.batch(indices)
        inputs, labels = mask_tokens(ids, indices, spec)
        ids, inputs, labels = ids.to(device), inputs.to(device), labels.to(device)
        gen, disc = pair.generator, pair.discriminator
        logits, target = mlm_logits(gen, "electra", inputs, labels, True)
        tot["loss"] += F.cross_entropy(logits.float(), target, reduction="sum").item()
        tot["correct"] += int((logits.argmax(-1) == target).sum())
        tot["masked"] += int(target.numel())
        keep = labels != IGNORE
        sampled = _gumbel_sample(logits, keep.nonzero()[:, 0], indices, obj.seed)
        disc_inputs = ids.clone()
        disc_inputs[keep] = sampled
        replaced = disc_inputs != ids
        d = disc(input_ids=disc_inputs).logits.float()
        tot["disc_loss"] += F.binary_cross_entropy_with_logits(d, replaced.float(), reduction="sum").item()
        tot["disc_correct"] += int(((d > 0) == replaced).sum())
        tot["tokens"] += ids.numel()
    return {
        "loss": tot["loss"] / max(1, tot["masked"]),
        "accuracy": tot["correct"] / max(1, tot["masked"]),
        "disc_loss": tot["disc_loss"] / max(1, tot["tokens"]),
        "disc_accuracy": tot["disc_correct"] / max(1, tot["tokens"]),
        "masked_tokens": tot["masked"],
    }
