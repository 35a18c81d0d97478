"""prepare: a folder of raw documents -> a clean, deduplicated corpus split by document.

    domainlm prepare RAW_DIR_OR_FILES... -o corpus/ [--text-field text] [--group-by act_id] [--languages en]

Output (``corpus/``): ``documents.jsonl`` (id, source, key, text, sha256, split, language, n_chars, meta),
``quarantine.jsonl`` (every input or document not used, with a short ``kind`` and a readable ``reason``;
duplicates name the document they duplicate), ``stats.json`` and the resolved ``config.yaml``.
Invariant (tested): every input file is in the corpus or in quarantine.

Pipeline: readers (readers/) -> cleaning steps (clean.py) -> minimum length -> language id (langid.py,
optional filter) -> exact and near dedup (dedup.py) -> split by a seeded hash of the document id or of
its ``--group-by`` field. It streams: memory is a few batches of documents plus the dedup indexes, which
are capped (``dedup_max_docs``); measured flat in benchmarks/RESULTS.md (prepare_memory).
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

from domainlm import config as cfgmod
from domainlm.config import PrepareConfig
from domainlm.corpus.clean import clean
from domainlm.corpus.dedup import Deduplicator
from domainlm.corpus.langid import detector as language_detector
from domainlm.corpus.readers import ReadError, ReadOptions, format_of, read
from domainlm.errors import UserError
from domainlm.formats import check_format
from domainlm.reporting import Quiet, Reporter

STATS_FORMAT = 1  # format_version of stats.json


@dataclass
class PrepareResult:
    output: Path
    documents: dict[str, int]
    characters: dict[str, int]
    quarantined: int
    duplicates: int
    stats: dict = field(default_factory=dict)


def iter_files(
    inputs: list[Path], exclude: Path | None = None
) -> Iterator[tuple[Path, tuple[str, str] | None]]:
    """Every file under ``inputs`` (recursive, sorted), with (kind, reason) for paths that cannot be used.

    Symlinked directories are not followed (no loops); a symlink to a file is read once by real path.
    The folder ``exclude`` (the output corpus, when it lies inside an input folder) is not entered.
    """
    seen: set[str] = set()
    skip = os.path.realpath(exclude) if exclude is not None else None
    for root in inputs:
        if root.is_file():
            yield root, None
            continue
        if not root.is_dir():
            yield root, ("link", "path is neither a file nor a folder (broken link or link loop?)")
            continue
        errors: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) != skip)
            for d in dirnames:
                if os.path.islink(os.path.join(dirpath, d)):
                    yield (
                        Path(dirpath, d),
                        ("link", "symbolic link to a folder: not followed (avoids loops); pass its target"),
                    )
            for name in sorted(filenames):
                p = Path(dirpath, name)
                try:
                    real = os.path.realpath(p, strict=True)
                except OSError as e:
                    yield p, ("link", f"cannot resolve path (broken link or link loop): {e.strerror or e}")
                    continue
                if real in seen:
                    yield p, ("link", "same file as one already read (link)")
                    continue
                seen.add(real)
                yield p, None
        for e in errors:
            yield Path(e.filename or root), ("unreadable", f"cannot list folder: {e.strerror or e}")


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
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _safe(value):
    """A JSON-writable copy: lone surrogates (undecodable file names, JSON escapes) become ``\\udcxx``."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    return value


def _reason_kind(e: BaseException) -> str:
    return getattr(e, "kind", "unreadable")


# ---- the per-document work that runs in worker processes -------------------------------------------
# Reading, deduplication lookups and writing stay in the main process, in input order; cleaning,
# language id and MinHash signatures (most of the time) run in ``workers`` forked processes over
# batches of records. Results come back in order, so the corpus is identical for any worker count.

_STATE: dict = {}
BATCH_RECORDS = 64
BATCH_CHARS = 2 * 2**20


def _setup(steps: dict, min_chars: int, keep: set[str] | None, dedup: Deduplicator, detector) -> None:
    _STATE.update(steps=steps, min_chars=min_chars, keep=keep, dedup=dedup, detector=detector)


def _process(batch: list[tuple]) -> list[tuple]:
    """Events in -> events out; each ("rec", path, n, record) becomes ("doc", ...) or ("drop", ...)."""
    st = _STATE
    out = []
    for event in batch:
        if event[0] != "rec":
            out.append(event)
            continue
        _, path, n, rec = event
        key = rec.key or ""
        if rec.error is not None:
            out.append(("drop", path, key, "bad-record", rec.error))
            continue
        text = clean(rec.text, st["steps"])
        if len(text) < st["min_chars"]:
            out.append(
                (
                    "drop",
                    path,
                    key,
                    "too-short",
                    f"too short after cleaning ({len(text)} < min_chars {st['min_chars']})",
                )
            )
            continue
        ((language, prob),) = st["detector"].detect([text])
        if st["keep"] is not None and language not in st["keep"]:
            out.append(
                (
                    "drop",
                    path,
                    key,
                    "language",
                    f"language '{language}' ({prob:.2f}) not in {sorted(st['keep'])}",
                )
            )
            continue
        digest, bands = st["dedup"].keys(text)
        out.append(("doc", path, n, key, rec.meta, text, language, digest, bands))
    return out


def _stable_name(path: Path, roots: list[Path]) -> str:
    """The file's name relative to the input it was found under: document ids (and so the split) stay
    the same when the same folder is prepared from another place or another working directory."""
    for root in roots:
        if path == root:
            return path.name
        if root.is_dir() and path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name


def _events(paths: list[Path], opts: ReadOptions, exclude: Path | None = None) -> Iterator[tuple]:
    """The input as a stream of events: ("rec", ...) per record, ("end"/"fail"/"skip", ...) per file."""
    for path, walk_error in iter_files(paths, exclude):
        if walk_error:
            yield ("skip", path, walk_error[0], walk_error[1])
            continue
        if format_of(path) is None and path.name.startswith("."):
            yield ("skip", path, "hidden", "hidden file skipped")
            continue
        size = 0
        try:
            size = path.stat().st_size
            if size == 0:
                raise ReadError("empty file", "empty")
            for n, rec in enumerate(read(path, opts)):
                yield ("rec", path, n, rec)
        except ReadError as e:
            yield ("fail", path, size, _reason_kind(e), str(e))
        except (OSError, MemoryError) as e:
            yield ("fail", path, size, "unreadable", f"cannot read file: {e.__class__.__name__}: {e}")
        except Exception as e:  # a reader library failing on odd input must not stop the run
            yield (
                "fail",
                path,
                size,
                "reader-error",
                f"reader failed: {e.__class__.__name__}: {str(e)[:200]}",
            )
        else:
            yield ("end", path, size)


def _batches(events: Iterator[tuple]) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    chars = 0
    for ev in events:
        batch.append(ev)
        if ev[0] == "rec":
            chars += len(ev[3].text)
        if len(batch) >= BATCH_RECORDS or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _processed(batches: Iterator[list[tuple]], workers: int) -> Iterator[list[tuple]]:
    """``_process`` over ``batches``, in order, with at most 2 batches per worker in flight (bounded memory)."""
    if workers <= 1:
        yield from map(_process, batches)
        return
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # fork: workers inherit the loaded language model and settings, and no caller __main__ is re-imported
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(
        workers,
        mp_context=mp.get_context(method),
        initializer=_setup,
        initargs=tuple(_STATE[k] for k in ("steps", "min_chars", "keep", "dedup", "detector")),
    ) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(_process, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class _Tally:
    """What the corpus writer counted: the numbers of stats.json."""

    docs: Counter = field(default_factory=Counter)
    chars: Counter = field(default_factory=Counter)
    words: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    files: int = 0
    files_used: int = 0
    bytes: int = 0
    duplicates: int = 0


class _CorpusWriter:
    """Takes the processed events in input order: deduplicates, splits and writes each document to
    ``documents.jsonl`` or to ``quarantine.jsonl``, counts, and reports each finished input file."""

    def __init__(
        self, fd, fq, cfg: PrepareConfig, dedup: Deduplicator, roots: list[Path], reporter: Reporter
    ):
        self.fd, self.fq, self.cfg, self.dedup, self.roots, self.reporter = (
            fd,
            fq,
            cfg,
            dedup,
            roots,
            reporter,
        )
        self.tally = _Tally()
        self.used_here = 0  # documents kept from the file being read

    def quarantine(self, source: Path, key: str, kind: str, reason: str, **extra) -> None:
        self.tally.reasons[kind] += 1
        row = {"source": str(source), "key": key, "kind": kind, "reason": reason, **extra}
        self.fq.write(json.dumps(row, ensure_ascii=True) + "\n")

    def write(
        self, path: Path, n: int, key: str, meta: dict, text: str, language: str, digest, bands
    ) -> bool:
        """Deduplicate, split and write one cleaned document; True if it entered the corpus."""
        doc_id = _sha(f"{_stable_name(path, self.roots)}\x00{key}\x00{n}")[:16]
        dup = self.dedup.check_keys(doc_id, digest, bands)
        if dup is not None:
            self.tally.duplicates += 1
            reason = f"{dup[0].replace('-', ' ')} of document {dup[1]}"
            self.quarantine(path, key, dup[0], reason, duplicate_of=dup[1])
            return False
        group = str(meta.get(self.cfg.group_by, doc_id)) if self.cfg.group_by else doc_id
        split = split_of(group, self.cfg.seed, self.cfg.split)
        row = {
            "id": doc_id,
            "source": _safe(str(path)),
            "key": _safe(key),
            "text": text,
            "sha256": _sha(text),
            "split": split,
            "language": language,
            "n_chars": len(text),
            "meta": _safe(meta),
        }
        self.fd.write(json.dumps(row, ensure_ascii=False) + "\n")
        t = self.tally
        t.docs[split] += 1
        t.chars[split] += len(text)
        t.words[split] += len(text.split())
        t.languages[language] += 1
        return True

    def file_done(self, path: Path, size: int) -> None:
        t = self.tally
        t.files += 1
        t.files_used += self.used_here > 0
        t.bytes += size
        self.used_here = 0
        self.reporter.step({"files": t.files, "bytes": t.bytes, "path": str(path)})

    def handle(self, ev: tuple) -> None:
        """One event from ``_process``: a document, a dropped record, or the end (or failure) of a file."""
        kind = ev[0]
        if kind == "doc":
            self.used_here += self.write(*ev[1:])
        elif kind == "drop":
            self.quarantine(*ev[1:])
        elif kind == "skip":
            self.quarantine(ev[1], "", ev[2], ev[3])
            self.file_done(ev[1], 0)
        elif kind == "fail":
            _, path, size, why, reason = ev
            kept = {"documents_kept_before": self.used_here} if self.used_here else {}
            self.quarantine(path, "", why, reason, **kept)
            self.file_done(path, size)
        elif kind == "end":
            if not self.used_here:
                # each record was quarantined with its own reason; note the file too
                self.quarantine(ev[1], "", "no-documents", "no usable document in file")
            self.file_done(ev[1], ev[2])


def _input_paths(inputs: list[str | Path]) -> list[Path]:
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UserError("no input given", "Pass a folder or files: domainlm prepare RAW_DIR -o corpus/")
    for p in paths:
        if not p.exists() and not p.is_symlink():
            raise UserError(f"input '{p}' does not exist", "Check the path")
    return paths


def _write_corpus(
    paths: list[Path], out: Path, cfg: PrepareConfig, workers: int | None, reporter: Reporter
) -> tuple[_Tally, Deduplicator]:
    """Read, process (in ``workers`` processes) and write every input; the files appear complete or not at all."""
    opts = ReadOptions(cfg.text_field, cfg.text_column, int(cfg.max_file_mb * 2**20))
    dedup = Deduplicator(cfg.dedup_exact, cfg.dedup_near, cfg.near_threshold, max_docs=cfg.dedup_max_docs)
    keep = set(cfg.languages) if cfg.languages else None
    _setup(cfg.model_dump(), cfg.min_chars, keep, dedup, language_detector())
    tmp_docs, tmp_quar = out / "documents.jsonl.tmp", out / "quarantine.jsonl.tmp"
    with tmp_docs.open("w", encoding="utf-8") as fd, tmp_quar.open("w", encoding="utf-8") as fq:
        writer = _CorpusWriter(fd, fq, cfg, dedup, paths, reporter)
        n_workers = max(1, workers or default_workers())
        for results in _processed(_batches(_events(paths, opts, out)), n_workers):
            for ev in results:
                writer.handle(ev)
    os.replace(tmp_docs, out / "documents.jsonl")
    os.replace(tmp_quar, out / "quarantine.jsonl")
    return writer.tally, dedup


def _stats(t: _Tally, dedup: Deduplicator, seconds: float) -> dict:
    """The content of stats.json."""
    return {
        "format_version": STATS_FORMAT,
        "files": t.files,
        "files_used": t.files_used,
        "input_bytes": t.bytes,
        "documents": dict(t.docs),
        "characters": dict(t.chars),
        "words": dict(t.words),
        # ~1.3 subword tokens per word: typical English WordPiece/BPE fertility; `domainlm tokenizer`
        # reports the real figure for the trained tokenizer.
        "estimated_tokens": {s: round(w * 1.3) for s, w in t.words.items()},
        "duplicates_removed": t.duplicates,
        "dedup_index_full": dedup.full,
        "languages": dict(t.languages.most_common()),
        "quarantined": sum(t.reasons.values()),
        "quarantine_reasons": dict(t.reasons.most_common()),
        "seconds": round(seconds, 2),
        "mb_per_s": round(t.bytes / 2**20 / max(seconds, 1e-9), 2),
    }


def read_stats(corpus: str | Path) -> dict:
    """A corpus folder's stats.json, its format checked (a UserError if it is missing or unreadable)."""
    path = Path(corpus) / "stats.json"
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(
            f"'{corpus}' is not a corpus folder (no readable stats.json)", "Run `domainlm prepare` first"
        ) from None
    check_format(stats, path, STATS_FORMAT, "corpus stats", "domainlm prepare")
    return stats


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
    languages: list[str] | None = None,
    workers: int | None = None,
    reporter: Reporter | None = None,
) -> PrepareResult:
    """Read, clean, deduplicate and split ``inputs`` into the corpus folder ``output``.

    Streams: a few batches of documents are in memory at a time, plus the bounded dedup indexes (see
    dedup.py). ``reporter`` is told ``start({"job": "prepare"})``, then ``step`` after each input file
    (files and bytes so far), then ``finish``; the CLI draws progress with it. ``workers``: processes
    for cleaning/language id/MinHash (default: the usable cores); speed only, the output is the same
    for any value.
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
        languages=languages,
    )
    paths = _input_paths(inputs)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    reporter = reporter or Quiet()
    t0 = time.perf_counter()
    reporter.start({"job": "prepare", "inputs": [str(p) for p in paths]})
    try:
        tally, dedup = _write_corpus(paths, out, cfg, workers, reporter)
    finally:
        reporter.finish()
    if sum(tally.docs.values()) == 0:
        raise UserError(
            f"no usable document in {', '.join(map(str, paths))} (see {out / 'quarantine.jsonl'})",
            "Check the file types and --text-field/--text-column",
        )
    stats = _stats(tally, dedup, time.perf_counter() - t0)
    (out / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    cfgmod.dump(cfg, out / "config.yaml")
    return PrepareResult(
        out, dict(tally.docs), dict(tally.chars), stats["quarantined"], tally.duplicates, stats
    )
