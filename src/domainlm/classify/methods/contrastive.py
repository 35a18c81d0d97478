"""Contrastive few-shot: SetFit's recipe (Tunstall et al. 2022) with plain torch.

1. Sample pairs of training documents, half with the same label (target cosine 1) and half with
   different labels (target 0), at most ``cfg.pair_budget`` pairs (SetFit samples ~20 per document,
   which on CPU costs minutes per fold; the cap keeps the cost fixed).
2. Tune the encoder for one epoch with SetFit's default loss, sentence-transformers'
   ``CosineSimilarityLoss`` (MSE between the pair's cosine and its target), body learning rate 2e-5
   (SetFit's default), on each document's first window of at most ``PAIR_TOKENS`` tokens.
3. Embed documents with the tuned encoder (mean over windows) and train a logistic-regression head.

The setfit package itself trains through transformers' Trainer and saves its head with joblib
(pickle); this keeps our own safe format (safetensors + skops) and determinism.
"""

from __future__ import annotations

import copy

from domainlm.classify.methods import frozen

PAIR_TOKENS = 128
LR = 2e-5
BATCH = 16


def sample_pairs(y, budget: int, rng) -> list[tuple[int, int, float]]:
    """(i, j, target) with i != j; alternately a same-label pair (1.0) and a different-label pair (0.0)."""
    import numpy as np

    by_label = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    pairs = []
    for k in range(budget):
        i = int(rng.integers(len(y)))
        same = by_label[y[i]]
        if k % 2 == 0 and len(same) > 1:
            j = int(rng.choice(same[same != i]))
        else:
            other = np.flatnonzero(y != y[i])
            if not len(other):
                continue
            j = int(rng.choice(other))
        pairs.append((i, j, float(y[i] == y[j])))
    return pairs


def tune(model, tok, texts: list[str], pairs, seed: int, log_dir=None):
    """One epoch of CosineSimilarityLoss over ``pairs`` (mean-pooled first windows)."""
    import torch
    import torch.nn.functional as F

    from domainlm.classify.report import tensorboard_writer
    from domainlm.classify.transformer import max_positions, pad, pad_id

    torch.manual_seed(seed)
    ids = tok(texts, truncation=True, max_length=min(PAIR_TOKENS, max_positions(model.config)))["input_ids"]
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    writer = tensorboard_writer(log_dir)
    model.train()

    def embed(rows):
        x, m = pad(rows, pad_id(tok))
        h = model(input_ids=x, attention_mask=m).last_hidden_state  # (B, T, H)
        m = m.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1).clamp(min=1)  # (B, H)

    for step, s in enumerate(range(0, len(pairs), BATCH)):
        chunk = pairs[s : s + BATCH]
        u, v = embed([ids[i] for i, _, _ in chunk]), embed([ids[j] for _, j, _ in chunk])
        target = torch.tensor([t for _, _, t in chunk])
        loss = F.mse_loss(F.cosine_similarity(u, v), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if writer is not None:
            writer.add_scalar("train/pair_loss", loss.item(), step + 1)
    if writer is not None:
        writer.close()
    return model.eval()


class Contrastive:
    multi_label = False
    name = "contrastive"

    def __init__(self, ctx):
        self.ctx = ctx

    def fit(self, texts, y, seed: int, log_dir=None) -> frozen.FittedFrozen:
        import numpy as np

        base = frozen.shared_encoder(self.ctx, self.name)
        pairs = sample_pairs(np.asarray(y), self.ctx.cfg.pair_budget, np.random.default_rng(seed))
        model = tune(copy.deepcopy(base.model), base.tok, texts, pairs, seed, log_dir)
        enc = frozen.Encoder(None, self.ctx.cfg, self.ctx.bf16, model=model, tok=base.tok)
        head = frozen.logistic(seed).fit(enc.embed(texts, "mean"), y)
        return frozen.FittedFrozen(enc, head, "mean", self.ctx.labels)
