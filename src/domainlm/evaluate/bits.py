"""bits per character: the intrinsic number that compares language models across families and tokenizers.

    domainlm evaluate runs/A runs/B --baseline ngram      # bits_per_char in each eval.json

``bits_per_char`` = the total negative log-likelihood, in bits, of held-out documents / their characters.
Per token or per word it would reward a tokenizer that cuts text coarsely; per character the same text
costs the same whichever tokenizer read it. Each document is scored after the end-of-text token that
separates documents in training (``[eos] doc``), every token of the document predicted, the end token
not (the n-gram scores the same tokens):

- causal LMs (GPT-2, Llama) and the RNN baseline: next-token probabilities, left to right, in windows of
  the run's ``seq_len`` that advance by half a window (each token scored once, with at least half a
  window of context after the first);
- XLNet: the same left-to-right factorisation, one of the orders it trains on, through ``perm_mask``
  (position i sees only positions before it) with every position a target;
- the Kneser-Ney n-gram: ``ngram.py`` on the same documents' tokens (capped, and the characters counted
  to where it stopped).

Masked LMs have no left-to-right likelihood: ``pppl_bits_per_char`` (lm.pseudo_perplexity) is the
pseudo-log-likelihood per character, comparable among masked LMs only. T5's span-corruption loss is
neither: ``evaluate`` reports its loss and says so.

What a tokenizer normalises away (lowercasing, unknown characters mapped to one [UNK], whitespace a
WordPiece pre-tokenizer drops) is not charged: such a tokenizer models less than the text. Byte-level BPE
is lossless.
"""

from __future__ import annotations

import math

LN2 = math.log(2)
# model kinds scored left to right: how each gives next-token logits over a window
CAUSAL_KINDS = ("clm", "plm")


def next_token_logprobs(model, kind: str, window):
    """(L,) token ids -> (L - 1,) log p(window[t] | window[:t]) for t = 1 .. L - 1 (fp32)."""
    import torch

    ids = window[None]  # (1, L)
    if kind == "plm":  # XLNet in natural order: i may not see j >= i; every position after the first a target
        L = ids.shape[1]
        perm_mask = torch.triu(torch.ones(L, L), diagonal=0)[None]  # (1, L, L)
        target_mapping = torch.eye(L)[1:][None]  # (1, L - 1, L)
        logits = model(input_ids=ids, perm_mask=perm_mask, target_mapping=target_mapping, use_cache=False)
        logits = logits.logits[0]  # (L - 1, V)
    else:
        logits = model(input_ids=ids).logits[0, :-1]  # (L - 1, V)
    return logits.float().log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0]


def causal_bits(model, tok, texts: list[str], seq_len: int, kind: str = "clm") -> dict:
    """Bits per character of ``texts`` under a left-to-right model (call under no_grad).

    Every document token is scored once: the first window scores its ``seq_len - 1`` predictions, each
    later one the next ``seq_len // 2`` with the rest of the window as context.
    """
    import torch

    start = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    stride = max(1, seq_len // 2)
    nll, n_tokens, n_chars = 0.0, 0, 0
    for text in texts:
        seq = [start] + tok(text, add_special_tokens=False)["input_ids"]
        n_chars += len(text)
        a = 1  # first position not yet scored
        while a < len(seq):
            b = min(len(seq), a + (seq_len - 1 if a == 1 else stride))
            w0 = max(0, b - seq_len)
            logp = next_token_logprobs(model, kind, torch.tensor(seq[w0:b]))  # targets w0 + 1 .. b - 1
            nll -= float(logp[-(b - a) :].sum())
            n_tokens += b - a
            a = b
    return bits_result(nll, n_chars, n_tokens, len(texts))


def bits_result(nll_nats: float, chars: int, tokens: int, docs: int) -> dict:
    """The ``bits_per_char`` row: total NLL in bits over the characters, and what it was counted on
    (nothing when no character was scored)."""
    if chars == 0:
        return {}
    return {
        "bits_per_char": nll_nats / LN2 / chars,
        "bpc_chars": chars,
        "bpc_tokens": tokens,
        "bpc_docs": docs,
    }


def chars_scored(tok, text: str, n_tokens: int) -> int:
    """Characters of ``text`` up to the end of its ``n_tokens``-th token (all of them if it has no more)."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    if n_tokens >= len(enc["input_ids"]):
        return len(text)
    return enc["offset_mapping"][n_tokens - 1][1] if n_tokens > 0 else 0
