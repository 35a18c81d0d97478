"""encode: a corpus split -> a flat memory-mapped token array with document boundaries, cached.

    shard = encode_split("corpus/", "tok/", "train", sep_id)   # shard.tokens: memmap of ids

Documents are concatenated with ``sep_id`` after each one (packing without padding, as in nanoGPT's
``train.bin``); ``shard.offsets[i]`` is where document ``i`` starts (``offsets[-1] == len(tokens)``).
Ids are stored as uint16 when the vocabulary fits in 65,536 entries, else uint32.

The cache key hashes (documents.jsonl identity, tokenizer.json, settings), so a second call with the same
inputs reuses the shard. Encoding runs in ``workers`` processes, each over a byte range of
documents.jsonl, writing its own part file (no token ever crosses a pipe); the parts are then
concatenated in order, so the result is identical for any number of workers. Memory per worker is one
batch of documents; the whole split is never in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domainlm.formats import check_format
from domainlm.tokens.tokenizer import tokenizer_hash

FORMAT_VERSION = 2
BATCH_DOCS = 256  # documents per encode_batch call
MIN_BYTES_PER_WORKER = 4 * 2**20  # below this a worker process costs more to start than it saves


@dataclass
class Shard:
    """One encoded split: ``tokens`` is a read-only memmap of ids, ``n_docs`` documents.

    ``offsets`` (uint64, ``n_docs + 1``) are document start positions in ``tokens``.
    """

    path: Path
    tokens: np.ndarray
    n_docs: int
    sep_id: int
    offsets: np.ndarray | None = None


def _corpus_identity(corpus: Path) -> str:
    st = (corpus / "documents.jsonl").stat()
    return f"{(corpus / 'documents.jsonl').resolve()}:{st.st_size}:{st.st_mtime_ns}"


def cache_key(corpus: Path, tokenizer_dir: Path, sep_id: int) -> str:
    """Hash of (corpus identity, tokenizer definition, settings, format version)."""
    h = hashlib.sha256()
    settings = {"sep_id": sep_id, "add_special_tokens": False, "format_version": FORMAT_VERSION}
    for part in (
        _corpus_identity(corpus),
        tokenizer_hash(tokenizer_dir),
        json.dumps(settings, sort_keys=True),
    ):
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _ranges(path: Path, n: int) -> list[tuple[int, int]]:
    """``n`` byte ranges of ``path`` that start at line starts and cover the file."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as f:
        for i in range(1, n):
            f.seek(max(cuts[-1], size * i // n))
            if f.tell() > 0:
                f.readline()  # move to the start of the next line
            cuts.append(min(size, max(cuts[-1], f.tell())))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _encode_range(args: tuple) -> tuple[str, int, np.ndarray]:
    """Worker: encode the ``split`` documents in bytes [start, end) of documents.jsonl into a part file.

    Returns (part path, number of tokens, token count of each document).
    """
    docs_path, tok_path, split, sep_id, dtype, start, end, part = args
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tok_path)
    tok.no_padding()  # a tokenizer.json may carry padding/truncation settings meant for a model's batches
    tok.no_truncation()
    # encode_batch_fast (tokenizers >= 0.21) skips character offsets we do not need: ~25% faster here
    encode_batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
    # Cheap pre-filter: a line of the split contains the quoted split name (as the "split" value); inside
    # a JSON string quotes are escaped, so text alone cannot fake a miss. Hits are checked after parsing.
    needle = f'"{split}"'.encode()
    lengths: list[int] = []
    n_tokens = 0
    sep = np.asarray([sep_id], dtype=dtype)
    with open(docs_path, "rb") as f, open(part, "wb") as out:
        f.seek(start)
        batch: list[str] = []

        def flush() -> None:
            nonlocal n_tokens
            encs = encode_batch(batch, add_special_tokens=False)
            pieces = []
            for enc in encs:
                pieces.append(np.asarray(enc.ids, dtype=dtype))
                pieces.append(sep)
                lengths.append(len(enc.ids) + 1)
            if pieces:
                arr = np.concatenate(pieces)
                out.write(arr.tobytes())
                n_tokens += len(arr)
            batch.clear()

        pos = start
        while pos < end:
            line = f.readline()
            if not line:
                break
            pos += len(line)
            if needle not in line:
                continue
            doc = json.loads(line)
            if doc.get("split") != split:
                continue
            batch.append(doc["text"])
            if len(batch) >= BATCH_DOCS:
                flush()
        if batch:
            flush()
    return part, n_tokens, np.asarray(lengths, dtype=np.uint64)


def _worker_init() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _encode(
    docs_path: Path, tok_path: Path, split: str, sep_id: int, dtype, workers: int, cache: Path, bin_path: Path
) -> tuple[int, np.ndarray]:
    size = docs_path.stat().st_size
    workers = max(1, min(workers, size // MIN_BYTES_PER_WORKER))
    # a few ranges per worker so an uneven range (long documents) does not leave a core idle
    ranges = _ranges(docs_path, workers * 4 if workers > 1 else 1)
    jobs = [
        (str(docs_path), str(tok_path), split, sep_id, dtype, a, b, str(cache / f"{split}.part{i}"))
        for i, (a, b) in enumerate(ranges)
    ]
    if workers == 1:
        results = map(_encode_range, jobs)
        pool = None
    else:
        import multiprocessing as mp

        # fork: spawn would re-import the caller's __main__ (a script without a main guard would recurse).
        # Safe here: workers use only tokenizers (single-threaded, TOKENIZERS_PARALLELISM=false) and numpy
        # I/O, none of the parent's thread pools.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(workers, initializer=_worker_init)
        results = pool.imap(_encode_range, jobs)
    tmp = bin_path.with_suffix(".bin.tmp")
    n_tokens = 0
    lengths = []
    try:
        with tmp.open("wb") as f:
            for part, n, lens in results:
                with open(part, "rb") as p:
                    while chunk := p.read(16 * 2**20):
                        f.write(chunk)
                os.remove(part)
                n_tokens += n
                lengths.append(lens)
            f.flush()
            os.fsync(f.fileno())
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    os.replace(tmp, bin_path)
    lens = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.uint64)
    offsets = np.zeros(len(lens) + 1, dtype=np.uint64)
    np.cumsum(lens, out=offsets[1:])
    return n_tokens, offsets


def encode_split(
    corpus: str | Path, tokenizer_dir: str | Path, split: str, sep_id: int, workers: int | None = None
) -> Shard:
    """Encode one split of ``corpus`` (cached; reused when corpus, tokenizer and settings are unchanged).

    ``workers``: encoding processes (default: the cores this process may use). Returns the memmapped shard.
    """
    from tokenizers import Tokenizer

    from domainlm.errors import UserError

    corpus, tokenizer_dir = Path(corpus), Path(tokenizer_dir)
    docs_path = corpus / "documents.jsonl"
    if not docs_path.is_file():
        raise UserError(
            f"'{corpus}' is not a corpus folder (no documents.jsonl)", "Run `domainlm prepare` first"
        )
    cache = corpus / "cache" / cache_key(corpus, tokenizer_dir, sep_id)
    bin_path, idx_path, meta_path = cache / f"{split}.bin", cache / f"{split}.idx", cache / f"{split}.json"
    if not meta_path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        vocab = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab_size()
        dtype = np.uint16 if vocab <= 2**16 else np.uint32
        n_tokens, offsets = _encode(
            docs_path,
            tokenizer_dir / "tokenizer.json",
            split,
            sep_id,
            dtype,
            workers or default_workers(),
            cache,
            bin_path,
        )
        offsets.tofile(idx_path)
        meta = {
            "format_version": FORMAT_VERSION,
            "dtype": np.dtype(dtype).name,
            "n_tokens": n_tokens,
            "n_docs": len(offsets) - 1,
            "sep_id": sep_id,
            "vocab_size": vocab,
            "corpus": str(corpus),
            "tokenizer_hash": tokenizer_hash(tokenizer_dir),
        }
        # written last: its presence marks the shard complete
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, meta_path)
    meta = json.loads(meta_path.read_text())
    check_format(meta, meta_path, FORMAT_VERSION, "token cache", f"rm -r {cache} (it is rebuilt)")
    if meta["n_tokens"] == 0:
        tokens = np.zeros(0, dtype=meta["dtype"])
    else:
        tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],))
    offsets = np.fromfile(idx_path, dtype=np.uint64) if idx_path.is_file() else None
    return Shard(bin_path, tokens, meta["n_docs"], sep_id, offsets)
