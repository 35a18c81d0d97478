"""prepare: a folder of raw documents -> a clean, deduplicated corpus split by document.

    domainlm prepare RAW_DIR_OR_FILES... -o corpus/ [--text-field text] [--group-by act_id]

Output (``corpus/``): ``documents.jsonl`` (id, source, key, text, sha256, split, n_chars, meta),
``quarantine.jsonl`` (every input or document not used, with its reason), ``stats.json`` and the resolved
``config.yaml``. Invariant: every input file is in the corpus or in quarantine.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import config as cfgmod
from .clean import clean
from .config import PrepareConfig
from .errors import UserError
from .readers import ReadError, ReadOptions, format_of, read

SPLITS = ("train", "validation", "test")


@dataclass
class PrepareResult:
    output: Path
    documents: dict[str, int]
    characters: dict[str, int]
    quarantined: int
    duplicates: int
    stats: dict = field(default_factory=dict)


def iter_files(inputs: list[Path]) -> Iterator[tuple[Path, str | None]]:
    """Every file under ``inputs`` (recursive, sorted), with an error string for paths that cannot be walked.

    Symlinked directories are not followed (no loops); a symlink to a file is read once by real path.
    """
    seen: set[str] = set()
    for root in inputs:
        if root.is_file():
            yield root, None
            continue
        if not root.is_dir():
            yield root, "path is neither a file nor a folder (broken link?)"
            continue
        errors: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append, followlinks=False):
            dirnames.sort()
            for d in dirnames:
                if os.path.islink(os.path.join(dirpath, d)):
                    yield Path(dirpath, d), "symbolic link to a folder: not followed (avoids loops); pass its target"
            for name in sorted(filenames):
                p = Path(dirpath, name)
                try:
                    real = os.path.realpath(p, strict=True)
                except OSError as e:
                    yield p, f"cannot resolve path: {e.strerror or e}"
                    continue
                if real in seen:
                    yield p, "same file as one already read (link)"
                    continue
                seen.add(real)
                yield p, None
        for e in errors:
            yield Path(e.filename or root), f"cannot list folder: {e.strerror or e}"


def split_of(key: str, seed: int, fractions: tuple[float, float, float]) -> str:
    """Deterministic split from a hash of (seed, key): the same document lands in the same split."""
    h = hashlib.sha256(f"{seed}\x00{key}".encode("utf-8", "surrogatepass")).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _NearDuplicates:
    """MinHash LSH over word 5-gram shingles (datasketch). ``seen(doc_id, text)`` -> id of the match."""

    def __init__(self, threshold: float, num_perm: int = 64):
        from datasketch import MinHash, MinHashLSH

        self._minhash, self.num_perm = MinHash, num_perm
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)

    def seen(self, doc_id: str, text: str) -> str | None:
        words = text.split()
        shingles = {" ".join(words[i : i + 5]) for i in range(max(1, len(words) - 4))}
        m = self._minhash(num_perm=self.num_perm)
        m.update_batch([s.encode("utf-8") for s in shingles])
        hits = self.lsh.query(m)
        if hits:
            return sorted(hits)[0]
        self.lsh.insert(doc_id, m)
        return None


def prepare(
    inputs: list[str | Path],
    output: str | Path = "corpus",
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    text_field: str | None = None,
    text_column: str | None = None,
    group_by: str | None = None,
    seed: int | None = None,
    min_chars: int | None = None,
    on_file=None,
) -> PrepareResult:
    """Read, clean, deduplicate and split ``inputs`` into the corpus folder ``output``.

    ``on_file(path, n_bytes)`` is called after each file (the CLI draws progress with it).
    """
    cfg = cfgmod.load(
        PrepareConfig,
        config,
        overrides,
        text_field=text_field,
        text_column=text_column,
        group_by=group_by,
        seed=seed,
        min_chars=min_chars,
    )
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UserError("no input given", "Pass a folder or files: domainlm prepare RAW_DIR -o corpus/")
    for p in paths:
        if not p.exists() and not p.is_symlink():
            raise UserError(f"input '{p}' does not exist", "Check the path")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    opts = ReadOptions(cfg.text_field, cfg.text_column, int(cfg.max_file_mb * 2**20))
    steps = cfg.model_dump()
    exact: dict[str, str] = {}
    near = _NearDuplicates(cfg.near_threshold) if cfg.dedup_near else None
    docs = Counter()
    chars = Counter()
    words = Counter()
    reasons = Counter()
    n_files = n_inputs_used = duplicates = 0
    t0 = time.perf_counter()
    tmp_docs, tmp_quar = out / "documents.jsonl.tmp", out / "quarantine.jsonl.tmp"
    with tmp_docs.open("w", encoding="utf-8") as fd, tmp_quar.open("w", encoding="utf-8") as fq:

        def quarantine(source: Path, key: str, reason: str, **extra) -> None:
            reasons[reason.split(":")[0].split("(")[0].strip()[:60]] += 1
            row = {"source": str(source), "key": key, "reason": reason, **extra}
            fq.write(json.dumps(row, ensure_ascii=False) + "\n")

        for path, walk_error in iter_files(paths):
            n_files += 1
            if walk_error:
                quarantine(path, "", walk_error)
                continue
            if format_of(path) is None and path.name.startswith("."):
                quarantine(path, "", "hidden file skipped")
                continue
            used_here = 0
            try:
                size = path.stat().st_size
                if size == 0:
                    raise ReadError("empty file")
                for n, rec in enumerate(read(path, opts)):
                    key = rec.key or ""
                    if "error" in rec.meta:
                        quarantine(path, key, rec.meta["error"])
                        continue
                    text = clean(rec.text, steps)
                    if len(text) < cfg.min_chars:
                        quarantine(path, key, f"too short after cleaning ({len(text)} < min_chars {cfg.min_chars})")
                        continue
                    doc_id = _sha(f"{path}\x00{key}\x00{n}")[:16]
                    digest = _sha(text)
                    if cfg.dedup_exact and digest in exact:
                        duplicates += 1
                        quarantine(path, key, "exact duplicate", duplicate_of=exact[digest])
                        continue
                    if near is not None:
                        match = near.seen(doc_id, text)
                        if match is not None:
                            duplicates += 1
                            quarantine(path, key, "near duplicate", duplicate_of=match)
                            continue
                    exact[digest] = doc_id
                    group = str(rec.meta.get(cfg.group_by, doc_id)) if cfg.group_by else doc_id
                    split = split_of(group, cfg.seed, cfg.split)
                    row = {
                        "id": doc_id,
                        "source": str(path),
                        "key": key,
                        "text": text,
                        "sha256": digest,
                        "split": split,
                        "n_chars": len(text),
                        "meta": rec.meta,
                    }
                    fd.write(json.dumps(row, ensure_ascii=False) + "\n")
                    docs[split] += 1
                    chars[split] += len(text)
                    words[split] += len(text.split())
                    used_here += 1
            except ReadError as e:
                quarantine(path, "", str(e))
                continue
            except (OSError, MemoryError) as e:
                quarantine(path, "", f"cannot read file: {e.__class__.__name__}: {e}")
                continue
            if used_here:
                n_inputs_used += 1
            elif format_of(path) is not None:
                # all records of the file are quarantined individually above; note the file too
                quarantine(path, "", "no usable document in file")
            if on_file is not None:
                on_file(path, size)
    os.replace(tmp_docs, out / "documents.jsonl")
    os.replace(tmp_quar, out / "quarantine.jsonl")
    if sum(docs.values()) == 0:
        raise UserError(
            f"no usable document in {', '.join(map(str, paths))} (see {out / 'quarantine.jsonl'})",
            "Check the file types and --text-field/--text-column",
        )
    stats = {
        "format_version": 1,
        "files": n_files,
        "files_used": n_inputs_used,
        "documents": dict(docs),
        "characters": dict(chars),
        "words": dict(words),
        "estimated_tokens": {s: round(w * 1.3) for s, w in words.items()},
        "duplicates_removed": duplicates,
        "quarantined": sum(reasons.values()),
        "quarantine_reasons": dict(reasons),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    cfgmod.dump(cfg, out / "config.yaml")
    return PrepareResult(out, dict(docs), dict(chars), stats["quarantined"], duplicates, stats)


def read_documents(corpus: str | Path, split: str | None = None) -> Iterator[dict]:
    """Stream the documents of a corpus folder (optionally one split)."""
    path = Path(corpus) / "documents.jsonl"
    if not path.is_file():
        raise UserError(f"'{corpus}' is not a corpus folder (no documents.jsonl)", "Run `domainlm prepare` first")
    with path.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if split is None or doc["split"] == split:
                yield doc
