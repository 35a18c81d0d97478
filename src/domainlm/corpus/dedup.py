"""Deduplication: exact (hash of the cleaned text) and near-duplicate (MinHash LSH, datasketch).

Each removed document is reported with the id of the kept document it duplicated.

Memory. The exact index keeps a 64-bit digest per document (one dict entry); the near-duplicate
index keeps one 64-bit key per LSH band per document (b = 4 bands of 15 rows at the default threshold
0.85 with 64 permutations, datasketch's own choice) instead of datasketch's in-memory ``MinHashLSH``,
which measured ~1.75 kB per document here. Both together measured 363 bytes per document
(tracemalloc, 20,000 documents). ``max_docs`` caps the *near-duplicate* index (default 1,000,000:
~0.36 GB with the exact index); past it, later documents are still checked against the documents it
holds but their band keys are not added, and ``full`` says so in the stats. The exact index has no
cap: past ``max_docs`` it keeps adding digests, so an exact copy is caught wherever it comes. A
document past the cap costs 125 bytes (a dict slot, the digest and index ints, the 8-byte id;
tracemalloc over 200,000 documents past a cap of 1). What the cap costs is near-duplicate recall: a near copy is caught only when the
document it copies is among the first ``max_docs`` kept; two near copies that both come later are
both kept. (Before exact digests were kept past the cap, a 5 GB run of 2.1M documents removed only
112k of ~211k planted copies: benchmarks/RESULTS.md, prepare_memory.) LSH candidates are reported
as near-duplicates without an exact Jaccard check (as datasketch's ``MinHashLSH.query`` returns them).
"""

from __future__ import annotations

import hashlib
import zlib
from array import array

SHINGLE = 5  # word 5-grams: long enough that boilerplate sentences alone do not make two texts alike
MAX_SHINGLES = 200_000  # near-dup signature of a huge document: its first 200k shingles (bounded time/memory)
CHUNK = 8192  # shingles hashed per datasketch update: its work array is (num_perm x CHUNK) uint64 = 4 MB


def _crc32(b: bytes) -> int:
    # Deterministic across processes (Python's hash() is salted) and ~10x faster than datasketch's sha1.
    return zlib.crc32(b)


def _key(b: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little")


class Deduplicator:
    """``check(doc_id, text) -> (kind, id of the earlier document) | None``; ``None`` means keep it.

    A kept document is added to the indexes. ``kind`` is ``"exact-duplicate"`` or ``"near-duplicate"``.
    """

    def __init__(
        self,
        exact: bool = True,
        near: bool = True,
        threshold: float = 0.85,
        num_perm: int = 64,
        max_docs: int = 1_000_000,
    ):
        self.exact, self.near, self.num_perm, self.max_docs = exact, near, num_perm, max_docs
        self._ids = array("Q")  # doc index -> 64-bit document id
        self._exact: dict[int, int] = {}  # digest -> doc index, every kept document
        self._near_docs = 0  # documents in the LSH tables: at most max_docs
        self.full = False  # the LSH tables reached max_docs
        if near:
            from datasketch import MinHash
            from datasketch.lsh import _optimal_param

            self._minhash = MinHash
            # permutations drawn once (datasketch would redraw the same ones per document: ~25% of its time)
            first = MinHash(num_perm=num_perm, hashfunc=_crc32)
            self._perm, self._scheme = first.permutations, first.scheme
            # the (bands, rows) pair datasketch's MinHashLSH would choose for this threshold
            self.bands, self.rows = _optimal_param(threshold, num_perm, 0.5, 0.5)
            self._tables: list[dict[int, int]] = [{} for _ in range(self.bands)]

    def _band_keys(self, text: str) -> list[int]:
        # Only the first MAX_SHINGLES shingles: the words of a longer text are never all split at once.
        words = text[: MAX_SHINGLES * 16].split()[: MAX_SHINGLES + SHINGLE - 1]
        m = self._minhash(
            num_perm=self.num_perm, hashfunc=_crc32, permutations=self._perm, scheme=self._scheme
        )
        n = max(1, len(words) - SHINGLE + 1)
        # Repeated shingles need no set: a minimum is unchanged by duplicates.
        for start in range(0, n, CHUNK):
            m.update_batch(
                [
                    " ".join(words[i : i + SHINGLE]).encode("utf-8", "surrogatepass")
                    for i in range(start, min(n, start + CHUNK))
                ]
            )
        hv = m.hashvalues
        return [_key(hv[i * self.rows : (i + 1) * self.rows].tobytes()) for i in range(self.bands)]

    def keys(self, text: str) -> tuple[int | None, list[int]]:
        """The index keys of ``text``: (exact digest, LSH band keys). Pure: may run in a worker process."""
        digest = _key(text.encode("utf-8", "surrogatepass")) if self.exact else None
        return digest, (self._band_keys(text) if self.near else [])

    def check(self, doc_id: str, text: str) -> tuple[str, str] | None:
        return self.check_keys(doc_id, *self.keys(text))

    def check_keys(self, doc_id: str, digest: int | None, band_keys: list[int]) -> tuple[str, str] | None:
        """Look ``doc_id``'s keys up; if it is no duplicate, add its digest, and its band keys while there is room."""
        if digest is not None and digest in self._exact:
            return "exact-duplicate", self._id(self._exact[digest])
        for table, k in zip(self._tables if self.near else [], band_keys, strict=False):
            hit = table.get(k)
            if hit is not None:
                return "near-duplicate", self._id(hit)
        near_room = self.near and self._near_docs < self.max_docs
        self.full = self.full or (self.near and not near_room)
        if digest is None and not near_room:
            return None  # nothing of it would be indexed: no id to keep either
        idx = len(self._ids)
        self._ids.append(int(doc_id, 16))
        if digest is not None:
            self._exact[digest] = idx  # always: an exact digest is small (125 bytes, above)
        if near_room:
            self._near_docs += 1
            for table, k in zip(self._tables, band_keys, strict=False):
                table[k] = idx
        return None

    def _id(self, idx: int) -> str:
        return f"{self._ids[idx]:016x}"
