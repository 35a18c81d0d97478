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
- ``clm``: next-token prediction (GPT-2, Llama, and the LSTM/GRU baseline of rnn.py).
- ``plm``: XLNet's permutation language modelling (Yang et al. 2019): a random factorisation order per
  sample; the last 1/K of it are predicted (partial prediction, K = 6), each from the tokens before it
  in the order, through ``XLNetLMHeadModel``'s ``perm_mask`` / ``target_mapping``.
- ``span``: T5's span corruption (Raffel et al. 2020): 15% of tokens in spans of mean length 3, each
  span replaced by a sentinel in the encoder input; the decoder writes the sentinels and the spans.

The loop sees an objective only through the ``Objective`` protocol below, resolved by name from
``OBJECTIVES``: it makes a micro-batch on the CPU (masks from (seed, sample index)), returns a loss
(sum, stats) through an ``nn.Module`` that DDP and ``torch.compile`` wrap (``MLMObjective`` ...), says
how the loop normalises that loss (its ``reduction``), and measures itself on validation blocks. A new
objective is one class registered in ``OBJECTIVES``; the loop does not change.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from domainlm.pretrain.metrics import EVAL_MASK_PROBABILITY

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
# mixed into the seed of the replaced-token draws, so they are a stream apart from the masks' draws
_ELECTRA_STREAM = 0x5EED_E1EC
# XLNet's partial prediction: the last 1/K of each factorisation order is predicted (Yang et al. 2019,
# section 2.3; K = 6 in the paper's table of pretraining hyperparameters)
PLM_K = 6
# T5's span corruption: noise density 15%, mean span length 3 (Raffel et al. 2020, section 3.1.4; the mean
# span length 3 chosen in section 3.3.4)
SPAN_DENSITY, SPAN_MEAN_LENGTH = 0.15, 3.0
_PLM_STREAM, _SPAN_STREAM = 0x9E12_7A11, 0x5BA7_C0DE  # the orders' and the spans' own random streams


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
            noise[sel] = torch.rand(n, V, generator=sample_generator(seed ^ _ELECTRA_STREAM, int(g)))
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


def has_sparse_head(family: str) -> bool:
    """Can ``mlm_logits(..., sparse=True)`` find this family's MLM head (MLM_HEADS, or ELECTRA's)?"""
    return family in MLM_HEADS or family == "electra"


# ----------------------------------------------------------------------------------------------------
# validation metrics: one definition per name (pretrain/metrics.py's METRICS says each in words)


def masked_lm_metrics(
    model, family: str, blocks, spec: MaskSpec, batch_size: int, n_batches: int, sparse: bool
):
    """Masked-token loss and accuracy over the first blocks, masked with ``spec`` (its seed fixes them)."""
    n = min(blocks.n_blocks, batch_size * n_batches)
    total, correct, count = 0.0, 0, 0
    sparse = sparse and has_sparse_head(family)
    device = next(model.parameters()).device  # masks are drawn on the CPU, then moved with the batch
    for start in range(0, n, batch_size):
        indices = range(start, min(n, start + batch_size))
        inputs, labels = mask_tokens(blocks.batch(indices), indices, spec)
        logits, target = mlm_logits(model, family, inputs.to(device), labels.to(device), sparse)
        total += F.cross_entropy(logits.float(), target, reduction="sum").item()
        correct += int((logits.argmax(-1) == target).sum())
        count += int(target.numel())
    return {"loss": total / max(1, count), "accuracy": correct / max(1, count), "masked_tokens": count}


def causal_lm_metrics(model, blocks, batch_size: int, n_batches: int) -> dict:
    """Next-token loss and perplexity per token over the first blocks."""
    n = min(blocks.n_blocks, batch_size * n_batches)
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, n, batch_size):
        loss, k = clm_loss(model, blocks.batch(range(start, min(n, start + batch_size))).to(device))
        total += loss.item() * k
        count += k
    loss = total / max(1, count)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50)), "tokens": count}


def _replacements(logits, rows: torch.Tensor, indices, spec: MaskSpec) -> torch.Tensor:
    """(N,) tokens for the N masked positions (``rows`` (N,): their batch rows): samples from the
    generator's ``logits`` (N, V) (Gumbel-max, as in training) or, without logits, uniformly random
    tokens; either way from each sample's own stream, so the batch size does not change the draws."""
    if logits is not None:
        return _gumbel_sample(logits, rows, indices, spec.seed)
    out = torch.empty(len(rows), dtype=torch.long)
    rows = rows.cpu()
    for r, g in enumerate(indices):
        sel = rows == r
        draw = sample_generator(spec.seed ^ _ELECTRA_STREAM, int(g))
        out[sel] = torch.randint(0, spec.vocab_size, (int(sel.sum()),), generator=draw)
    return out


def electra_metrics(
    discriminator, generator, blocks, spec: MaskSpec, batch_size: int, n_batches: int
) -> dict:
    """Replaced-token detection on fixed masks (``spec.seed``): the one definition of the ``disc_*`` names.

    The masked positions (BERT masking) are filled with the generator's samples or, without a
    generator, with uniformly random tokens; a sample equal to the original counts as original (Clark et
    al. 2020). Scored are all non-special tokens: ``disc_accuracy`` is the share labelled right (always
    answering "original" scores ``1 - disc_replaced_fraction``), ``disc_replaced_f1`` the F1 of
    "replaced", ``disc_loss`` the mean binary cross-entropy. With a generator, also its masked-token
    ``loss``/``accuracy``/``masked_tokens`` at the same positions (``masked_lm_metrics``'s definitions).
    """
    n = min(blocks.n_blocks, batch_size * n_batches)
    t = dict.fromkeys(("loss", "correct", "masked", "bce", "right", "scored", "tp", "fp", "fn"), 0.0)
    device = next(discriminator.parameters()).device
    specials = torch.tensor(spec.special_ids, dtype=torch.long)
    for start in range(0, n, batch_size):
        indices = list(range(start, min(n, start + batch_size)))
        ids = blocks.batch(indices)  # (B, T)
        inputs, labels = mask_tokens(ids, indices, spec)
        scored = ~torch.isin(ids, specials).to(device)  # (B, T)
        ids, inputs, labels = ids.to(device), inputs.to(device), labels.to(device)
        logits = None
        if generator is not None:
            logits, target = mlm_logits(generator, "electra", inputs, labels, True)  # (N, V), (N,)
            t["loss"] += F.cross_entropy(logits.float(), target, reduction="sum").item()
            t["correct"] += int((logits.argmax(-1) == target).sum())
            t["masked"] += int(target.numel())
        keep = labels != IGNORE  # (B, T)
        corrupted = ids.clone()
        corrupted[keep] = _replacements(logits, keep.nonzero()[:, 0], indices, spec).to(device)
        replaced = corrupted != ids  # (B, T) bool
        d = discriminator(input_ids=corrupted).logits.float()  # (B, T)
        bce = F.binary_cross_entropy_with_logits(d, replaced.float(), reduction="none")
        pred = d > 0
        t["bce"] += float(bce[scored].sum())
        t["right"] += int((pred == replaced)[scored].sum())
        t["scored"] += int(scored.sum())
        t["tp"] += int((pred & replaced)[scored].sum())
        t["fp"] += int((pred & ~replaced)[scored].sum())
        t["fn"] += int((~pred & replaced)[scored].sum())
    scored_n = max(1, int(t["scored"]))
    out = {
        "disc_loss": t["bce"] / scored_n,
        "disc_accuracy": t["right"] / scored_n,
        "disc_replaced_f1": 2 * t["tp"] / max(1, 2 * t["tp"] + t["fp"] + t["fn"]),
        "disc_replaced_fraction": (t["tp"] + t["fn"]) / scored_n,
        "disc_tokens": int(t["scored"]),
    }
    if generator is None:
        return out
    masked = max(1, int(t["masked"]))
    return {
        "loss": t["loss"] / masked,
        "accuracy": t["correct"] / masked,
        "masked_tokens": int(t["masked"]),
    } | out


# ----------------------------------------------------------------------------------------------------
# XLNet's permutation LM and T5's span corruption: per-sample draws from (seed, sample index)


def permutation_targets(T: int, n_predict: int, seed: int, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(perm_mask (T, T), target positions (n_predict,) ascending) of sample ``g``.

    A factorisation order is a random permutation of the T positions drawn from (seed, g); its last
    ``n_predict`` positions are the targets. ``perm_mask[i, j] = 1``: i may not see j (transformers'
    XLNet convention). A target sees every non-target and the targets before it in the order, never
    itself or a later one; a non-target sees every non-target and no target, as in XLNet's own
    ``_local_perm`` (Yang et al. 2019, data_utils.py): the loss is then log p(targets | non-targets)
    factorised along the order.
    """
    order = torch.randperm(T, generator=sample_generator(seed ^ _PLM_STREAM, int(g)))  # (T,)
    rank = torch.empty(T, dtype=torch.long)
    rank[order] = torch.arange(T)  # rank[p]: where position p comes in the order
    target = rank >= T - n_predict  # (T,) bool
    perm_mask = target[None, :] & (rank[None, :] >= rank[:, None])  # (T, T): row i may not see column j
    return perm_mask.float(), order[T - n_predict :].sort().values


def plm_n_predict(T: int) -> int:
    """Targets per sample of length T: 1/K of the positions (at least one)."""
    return max(1, T // PLM_K)


def plm_batch(ids: torch.Tensor, indices, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, T) ids -> perm_mask (B, T, T), target_mapping (B, n, T) one-hot, labels (B, n)."""
    B, T = ids.shape
    n = plm_n_predict(T)
    masks, targets = zip(*(permutation_targets(T, n, seed, g) for g in indices), strict=True)
    targets = torch.stack(targets)  # (B, n)
    mapping = F.one_hot(targets, T).float()  # (B, n, T): row k picks target k's position
    return torch.stack(masks), mapping, torch.gather(ids, 1, targets)


def _segments(n_items: int, n_segments: int, gen: torch.Generator) -> torch.Tensor:
    """(n_segments,) lengths >= 1 summing to ``n_items``: a uniformly random composition (T5's
    ``_random_segmentation``: n_segments - 1 cut points among the n_items - 1 gaps)."""
    cuts = (torch.randperm(n_items - 1, generator=gen)[: n_segments - 1] + 1).sort().values
    return torch.cat([torch.tensor([0]), cuts, torch.tensor([n_items])]).diff()


def span_noise_mask(T: int, seed: int, g: int) -> torch.Tensor:
    """(T,) bool of sample ``g``: round(15% of T) noise tokens in round(noise / 3) spans, separated by
    kept stretches, starting with a kept one (T5's ``random_spans_noise_mask``, Raffel et al. 2020)."""
    n_noise = min(max(round(T * SPAN_DENSITY), 1), T - 1)
    n_spans = min(max(1, round(n_noise / SPAN_MEAN_LENGTH)), T - n_noise)
    gen = sample_generator(seed ^ _SPAN_STREAM, int(g))
    noise_len, keep_len = _segments(n_noise, n_spans, gen), _segments(T - n_noise, n_spans, gen)
    lengths = torch.stack([keep_len, noise_len], 1).flatten()  # keep, noise, keep, noise ...
    return (torch.arange(2 * n_spans) % 2 == 1).repeat_interleave(lengths)


def span_corrupt(ids: torch.Tensor, noise: torch.Tensor, sentinels: torch.Tensor, eos: int | None):
    """(T,) ids and noise mask -> (encoder input, decoder target), both 1-D.

    Input: the kept tokens with the k-th noise span replaced by sentinel k; target: sentinel k then span
    k's tokens, for every span, then one more sentinel (the end of the last span). ``eos`` ends both.
    """
    start = noise & ~torch.cat([torch.tensor([False]), noise[:-1]])  # (T,) first token of a span
    span = start.cumsum(0) - 1  # (T,) index of the span a noise token is in
    n_spans = int(start.sum())
    inputs = torch.where(start, sentinels[span.clamp(min=0)], ids)[~noise | start]
    pairs = torch.stack([sentinels[span[noise]], ids[noise]], 1).flatten()  # (2 n_noise,)
    keep = torch.stack([start[noise], torch.ones_like(start[noise])], 1).flatten()
    targets = torch.cat([pairs[keep], sentinels[n_spans : n_spans + 1]])
    if eos is not None:
        inputs, targets = torch.cat([inputs, torch.tensor([eos])]), torch.cat([targets, torch.tensor([eos])])
    return inputs, targets


def span_batch(ids: torch.Tensor, indices, seed: int, sentinels: list[int], eos: int | None):
    """(B, T) ids -> (encoder inputs (B, L_in), decoder targets (B, L_out)); every row has the same
    lengths (the counts of noise tokens and spans depend on T only)."""
    T = ids.shape[1]
    n_spans = max(1, round(min(max(round(T * SPAN_DENSITY), 1), T - 1) / SPAN_MEAN_LENGTH))
    if len(sentinels) < n_spans + 1:
        from domainlm.errors import UserError

        raise UserError(
            f"span corruption of {T}-token blocks needs {n_spans + 1} sentinel tokens; the tokenizer has "
            f"{len(sentinels)}",
            "Use a T5-style tokenizer (domainlm tokenizer --style t5, or let pretrain train one), or a "
            "shorter train.seq_len",
        )
    table = torch.tensor(sentinels)
    rows = [span_corrupt(ids[r], span_noise_mask(T, seed, g), table, eos) for r, g in enumerate(indices)]
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


class PLMObjective(nn.Module):
    """forward(ids, perm_mask, target_mapping, labels) -> summed cross-entropy at the targets (fp32)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, perm_mask, target_mapping, labels) -> torch.Tensor:
        out = self.model(input_ids=ids, perm_mask=perm_mask, target_mapping=target_mapping, use_cache=False)
        logits = out.logits  # (B, n, V): the query stream at each target
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="sum")


class SpanObjective(nn.Module):
    """forward(inputs, labels) -> summed decoder cross-entropy over every target token (fp32)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(labels[:, :1], self.model.config.decoder_start_token_id)
        decoder_inputs = torch.cat([start, labels[:, :-1]], 1)  # teacher forcing, shifted right
        logits = self.model(input_ids=inputs, decoder_input_ids=decoder_inputs, use_cache=False).logits
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="sum")


def _target_metrics(module, batches) -> dict:
    """Mean loss per target over ``batches`` of (module arguments, targets)."""
    total, count = 0.0, 0
    for args, n in batches:
        total += module(*args).item()
        count += n
    return {"loss": total / max(1, count), "targets": count}


def plm_metrics(model, blocks, batch_size: int, n_batches: int, seed: int) -> dict:
    """XLNet's permutation-LM loss per target on the first blocks, orders drawn from ``seed``."""
    n, module = min(blocks.n_blocks, batch_size * n_batches), PLMObjective(model)
    device = next(model.parameters()).device

    def batches():
        for start in range(0, n, batch_size):
            indices = range(start, min(n, start + batch_size))
            ids = blocks.batch(indices)
            args = (ids, *plm_batch(ids, indices, seed))
            yield tuple(a.to(device) for a in args), args[-1].numel()

    return _target_metrics(module, batches())


def span_metrics(model, tok, blocks, batch_size: int, n_batches: int, seed: int) -> dict:
    """T5's span-corruption loss per target token on the first blocks, spans drawn from ``seed``."""
    from domainlm.tokens.tokenizer import sentinel_ids

    n, module = min(blocks.n_blocks, batch_size * n_batches), SpanObjective(model)
    device, sentinels = next(model.parameters()).device, sentinel_ids(tok)

    def batches():
        for start in range(0, n, batch_size):
            indices = range(start, min(n, start + batch_size))
            inputs, labels = span_batch(blocks.batch(indices), indices, seed, sentinels, tok.eos_token_id)
            yield (inputs.to(device), labels.to(device)), labels.numel()

    return _target_metrics(module, batches())


# ----------------------------------------------------------------------------------------------------
# the contract the loop trains through, and the registry that resolves an objective by name


@dataclass
class Batch:
    """One micro-batch, made on the CPU: the objective module's arguments and its predicted tokens."""

    args: tuple  # positional arguments of ``Objective.module`` (tensors; ELECTRA also the sample indices)
    count: int  # tokens predicted (the "sum" reduction divides the loss by their total over processes)

    def to(self, device) -> Batch:
        return Batch(tuple(a.to(device) if torch.is_tensor(a) else a for a in self.args), self.count)


@dataclass
class Setup:
    """What every objective is built from."""

    model: nn.Module  # the network (ELECTRA: an ElectraPair)
    family: str  # the model family (selects the MLM head for sparse prediction)
    mask_spec: MaskSpec  # masking of the run (its seed is the run's seed)
    word_starts: torch.Tensor | None  # (V,) bool table for whole-word masking, None: mask pieces
    sparse: bool  # vocabulary projection on the predicted positions only
    seed: int  # the run's seed (ELECTRA's replaced-token draws)
    tok: Any = None  # the run's tokenizer (T5's span corruption takes its sentinels and end token)


class Objective(Protocol):
    """What the training loop needs from an objective (DESIGN.md, decision 2).

    The class attributes tell the rest of the run what the objective needs; the methods do the work.
    ``batch`` runs on the CPU and derives every random draw from (seed, sample index), so a resumed run
    and a DDP run see the same masks as an uninterrupted single process.
    """

    needs_mask_token: ClassVar[bool]  # the tokenizer must have a mask token
    block_layout: ClassVar[str]  # blocks as for "mlm" ([CLS] ... [SEP]) or "clm" (bare): tokens.blocks
    tokenizer_style: ClassVar[str | None]  # style of a tokenizer trained for the run (None: the preset's)
    auto_model: ClassVar[str | None]  # transformers Auto class that --init-from loads (None: not supported)
    # "sum": ``loss`` returns a sum over ``Batch.count`` tokens, the loop divides by the global count (so
    # N processes == one process with N times the batch); "mean": a per-process mean, averaged over processes
    reduction: ClassVar[str]
    stats: ClassVar[tuple[str, ...]]  # names of the extra numbers ``loss`` returns, logged per train row
    module: nn.Module  # what DDP and torch.compile wrap; ``loss`` calls it (or its wrapper)

    def __init__(self, setup: Setup) -> None: ...
    def batch(self, ids: torch.Tensor, indices: Sequence[int]) -> Batch:
        """(B, T) token ids of the samples ``indices`` -> the micro-batch (on the CPU)."""
        ...

    def loss(self, module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, stats) of ``batch`` through ``module`` (``self.module`` or its DDP/compiled wrapper)."""
        ...

    def metrics(self, blocks, batch_size: int, n_batches: int, seed: int) -> dict[str, Any]:
        """Validation metrics over the first blocks, masks drawn from ``seed`` (metrics.EVAL_SEED)."""
        ...


def _mask(s: Setup, ids: torch.Tensor, indices) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of a batch with the run's spec, of whole words when the run asks for it."""
    starts = word_starts(ids, s.word_starts, s.mask_spec.special_ids) if s.word_starts is not None else None
    return mask_tokens(ids, indices, s.mask_spec, starts)


class MLM:
    """Masked language modelling (BERT; RoBERTa's dynamic masking): cross-entropy at masked tokens."""

    needs_mask_token, block_layout, tokenizer_style, auto_model = True, "mlm", None, "AutoModelForMaskedLM"
    reduction, stats = "sum", ()

    def __init__(self, setup: Setup):
        self.setup = setup
        self.module = MLMObjective(setup.model, setup.family, setup.sparse and has_sparse_head(setup.family))

    def batch(self, ids, indices) -> Batch:
        inputs, labels = _mask(self.setup, ids, indices)
        return Batch((inputs, labels), int((labels != IGNORE).sum()))

    def loss(self, module, batch: Batch):
        return module(*batch.args), {}

    def metrics(self, blocks, batch_size, n_batches, seed):
        s = self.setup
        spec = dataclasses.replace(s.mask_spec, seed=seed, probability=EVAL_MASK_PROBABILITY)
        return masked_lm_metrics(s.model, s.family, blocks, spec, batch_size, n_batches, s.sparse)


class CLM:
    """Causal language modelling (GPT-2, Llama): next-token cross-entropy at every position."""

    needs_mask_token, block_layout, tokenizer_style, auto_model = False, "clm", "gpt", "AutoModelForCausalLM"
    reduction, stats = "sum", ()

    def __init__(self, setup: Setup):
        self.setup = setup
        self.module = CLMObjective(setup.model)

    def batch(self, ids, indices) -> Batch:
        return Batch((ids,), ids[:, 1:].numel())

    def loss(self, module, batch: Batch):
        return module(*batch.args), {}

    def metrics(self, blocks, batch_size, n_batches, seed):
        return causal_lm_metrics(self.setup.model, blocks, batch_size, n_batches)


class Electra:
    """Replaced-token detection (ELECTRA): generator MLM loss + 50 x discriminator loss, per-process means."""

    needs_mask_token, block_layout, tokenizer_style, auto_model = True, "mlm", None, None
    reduction, stats = "mean", ("gen_loss", "disc_loss")

    def __init__(self, setup: Setup):
        self.setup = setup
        self.module = ElectraObjective(setup.model, setup.sparse, setup.seed)

    def batch(self, ids, indices) -> Batch:
        inputs, labels = _mask(self.setup, ids, indices)  # the same masking as MLM
        return Batch((ids, inputs, labels, list(indices)), int((labels != IGNORE).sum()))

    def loss(self, module, batch: Batch):
        loss, gen_loss, disc_loss = module(*batch.args)
        return loss, {"gen_loss": gen_loss, "disc_loss": disc_loss}

    def metrics(self, blocks, batch_size, n_batches, seed):
        pair, spec = (
            self.setup.model,
            dataclasses.replace(self.setup.mask_spec, seed=seed, probability=EVAL_MASK_PROBABILITY),
        )
        return electra_metrics(pair.discriminator, pair.generator, blocks, spec, batch_size, n_batches)


class PLM:
    """Permutation language modelling (XLNet): the last 1/K of a random factorisation order predicted."""

    needs_mask_token, block_layout, tokenizer_style, auto_model = False, "clm", None, "AutoModelForCausalLM"
    reduction, stats = "sum", ()

    def __init__(self, setup: Setup):
        self.setup = setup
        self.module = PLMObjective(setup.model)
        # XLNet's segment terms (seg_embed, r_s_bias) act only with token_type_ids, which single-segment
        # blocks do not have: frozen, so the optimizer skips them and DDP does not wait for their gradients
        for name, p in setup.model.named_parameters():
            if name.endswith(("rel_attn.seg_embed", "rel_attn.r_s_bias")):
                p.requires_grad_(False)

    def batch(self, ids, indices) -> Batch:
        perm_mask, mapping, labels = plm_batch(ids, indices, self.setup.seed)
        return Batch((ids, perm_mask, mapping, labels), labels.numel())

    def loss(self, module, batch: Batch):
        return module(*batch.args), {}

    def metrics(self, blocks, batch_size, n_batches, seed):
        return plm_metrics(self.setup.model, blocks, batch_size, n_batches, seed)


class Span:
    """Span corruption (T5): sentinels replace 15% of tokens in spans; the decoder writes the spans."""

    needs_mask_token, block_layout, tokenizer_style, auto_model = False, "clm", None, "AutoModelForSeq2SeqLM"
    reduction, stats = "sum", ()

    def __init__(self, setup: Setup):
        from domainlm.tokens.tokenizer import sentinel_ids

        self.setup, self.sentinels = setup, sentinel_ids(setup.tok) if setup.tok is not None else []
        self.eos = setup.tok.eos_token_id if setup.tok is not None else None
        self.module = SpanObjective(setup.model)

    def batch(self, ids, indices) -> Batch:
        inputs, labels = span_batch(ids, indices, self.setup.seed, self.sentinels, self.eos)
        return Batch((inputs, labels), labels.numel())

    def loss(self, module, batch: Batch):
        return module(*batch.args), {}

    def metrics(self, blocks, batch_size, n_batches, seed):
        return span_metrics(self.setup.model, self.setup.tok, blocks, batch_size, n_batches, seed)


# objective name -> class (``--objective``); a new objective is one class here
OBJECTIVES: dict[str, type[Objective]] = {
    "mlm": MLM,
    "electra": Electra,
    "clm": CLM,
    "plm": PLM,
    "span": Span,
}
