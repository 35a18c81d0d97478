"""Training blocks from a memmapped shard, deterministic in (seed, sample index).

Sample ``g`` (global index over the whole run) is block ``perm(seed, epoch)[g % n_blocks]`` of epoch
``g // n_blocks``. Nothing depends on what was read before, so resuming at step ``s`` restores the data
position exactly, and several processes (DDP) can each take their own indices of the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from domainlm.errors import UserError
from domainlm.tokens.encode import Shard


@dataclass
class BlockSpec:
    """How a block is framed: ``[prefix] content [suffix]`` (BERT: [CLS] ... [SEP]; GPT: content only)."""

    seq_len: int
    prefix: list[int]
    suffix: list[int]

    @property
    def content(self) -> int:
        return self.seq_len - len(self.prefix) - len(self.suffix)


class Blocks:
    """Fixed-length blocks cut from a shard's token stream (documents packed, separated by sep)."""

    def __init__(self, shard: Shard, spec: BlockSpec, seed: int, shuffle: bool = True):
        self.tokens, self.spec, self.seed, self.shuffle = shard.tokens, spec, seed, shuffle
        self.n_blocks = len(self.tokens) // spec.content
        if self.n_blocks == 0:
            raise UserError(
                f"split '{shard.path.stem}' has {len(self.tokens)} tokens, fewer than one block of {spec.seq_len}",
                "Add documents, or lower train.seq_len",
            )
        self._perm_epoch, self._perm = -1, None

    def _order(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm, self._perm_epoch = rng.permutation(self.n_blocks), epoch
        return self._perm

    def block(self, g: int) -> np.ndarray:
        """Block of global sample index ``g``."""
        epoch, j = divmod(g, self.n_blocks)
        idx = int(self._order(epoch)[j]) if self.shuffle else j
        c = self.spec.content
        return np.asarray(self.tokens[idx * c : (idx + 1) * c], dtype=np.int64)

    def batch(self, indices) -> torch.Tensor:
        """(B, T) int64 input ids for these global sample indices."""
        pre, suf = self.spec.prefix, self.spec.suffix
        rows = [np.concatenate([pre, self.block(g), suf]) if (pre or suf) else self.block(g) for g in indices]
        return torch.from_numpy(np.stack(rows).astype(np.int64))


def block_spec(objective: str, tok, seq_len: int):
    if objective == "clm":
        return BlockSpec(seq_len, [], [])
    return BlockSpec(seq_len, [tok.cls_token_id], [tok.sep_token_id])


def separator_id(objective: str, tok) -> int:
    sep = tok.sep_token_id if objective != "clm" else tok.eos_token_id
    if sep is None:
        sep = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    if sep is None:
        raise UserError(
            "the tokenizer has no separator/end-of-text token", "Train it with `domainlm tokenizer`"
        )
    return sep
