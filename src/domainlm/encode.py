"""encode: a corpus split -> a flat memory-mapped token array, cached under a hash of its inputs.

Documents are concatenated with a separator token between them (packing without padding, as in
nanoGPT's ``train.bin``). The cache key hashes (documents.jsonl identity, tokenizer.json, settings), so a
second run with the same inputs reuses the shards and memory stays flat however large the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tokenizer import tokenizer_hash

FORMAT_VERSION = 2  # 2: documents no longer truncated/padded by a tokenizer.json's own settings


@dataclass
class Shard:
    """One encoded split: ``tokens`` is a read-only memmap of ids, ``n_docs`` documents."""

    path: Path
    tokens: np.ndarray
    n_docs: int
    sep_id: int


def _corpus_identity(corpus: Path) -> str:
    st = (corpus / "documents.jsonl").stat()
    return f"{(corpus / 'documents.jsonl').resolve()}:{st.st_size}:{st.st_mtime_ns}"


def cache_key(corpus: Path, tokenizer_dir: Path, sep_id: int) -> str:
    h = hashlib.sha256()
    for part in (_corpus_identity(corpus), tokenizer_hash(tokenizer_dir), str(sep_id), str(FORMAT_VERSION)):
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def encode_split(corpus: str | Path, tokenizer_dir: str | Path, split: str, sep_id: int,
                 batch_docs: int = 256) -> Shard:
    """Encode one split of ``corpus`` (cached). Returns the memmapped shard."""
    from tokenizers import Tokenizer

    from .prepare import read_documents

    corpus, tokenizer_dir = Path(corpus), Path(tokenizer_dir)
    cache = corpus / "cache" / cache_key(corpus, tokenizer_dir, sep_id)
    bin_path, meta_path = cache / f"{split}.bin", cache / f"{split}.json"
    if not meta_path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        # a tokenizer.json may carry its own truncation/padding (sentence-transformers checkpoints such as
        # MiniLM save max_length 128 + padding): documents must be encoded whole and unpadded
        tok.no_truncation()
        tok.no_padding()
        vocab = tok.get_vocab_size()
        dtype = np.uint16 if vocab <= 2**16 else np.uint32
        tmp = bin_path.with_suffix(".bin.tmp")
        n_tokens = n_docs = 0
        with tmp.open("wb") as f:
            batch: list[str] = []

            def flush() -> None:
                nonlocal n_tokens, n_docs
                for enc in tok.encode_batch(batch, add_special_tokens=False):
                    ids = np.asarray(enc.ids + [sep_id], dtype=dtype)
                    f.write(ids.tobytes())
                    n_tokens += len(ids)
                    n_docs += 1
                batch.clear()

            for doc in read_documents(corpus, split):
                batch.append(doc["text"])
                if len(batch) >= batch_docs:
                    flush()
            if batch:
                flush()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, bin_path)
        meta = {"format_version": FORMAT_VERSION, "dtype": np.dtype(dtype).name, "n_tokens": n_tokens,
                "n_docs": n_docs, "sep_id": sep_id, "vocab_size": vocab}
        meta_path.write_text(json.dumps(meta, indent=2))
    meta = json.loads(meta_path.read_text())
    if meta["n_tokens"] == 0:
        tokens = np.zeros(0, dtype=meta["dtype"])
    else:
        tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],))
    return Shard(bin_path, tokens, meta["n_docs"], sep_id)
