"""Readers: one per file format family, each ``read(source, path, opts) -> Iterator[Record]``.

A reader yields the documents of one file; it raises :class:`ReadError` with a human reason and a short
``kind`` when the file cannot be used (the caller puts the file in quarantine; the run goes on). ``.gz``
files are decompressed with a cap on the expanded size.

Line-oriented formats (``.jsonl``) are streamed: the reader gets a binary stream, never the whole file,
so memory does not grow with the file. The others get the file's bytes, bounded by ``max_bytes``.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


class ReadError(Exception):
    """A file (or one record of it) that cannot be used, with the reason to report.

    ``kind`` is a short stable label counted in the summary (``empty``, ``binary``, ``too-large``...).
    """

    def __init__(self, reason: str, kind: str = "unreadable"):
        super().__init__(reason)
        self.kind = kind


@dataclass
class Record:
    """One document read from a file. ``key`` locates it inside the file (line, row, page).

    A record with ``error`` set is a bad record (not JSON, field missing): it is quarantined, the rest of
    the file is used.
    """

    text: str
    key: str = ""
    meta: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class ReadOptions:
    text_field: str = "text"
    text_column: str = "text"
    max_bytes: int = 512 * 2**20


def _load(name: str) -> Callable:
    from domainlm.corpus.readers import markup, office, structured, text

    return {
        "text": text.read,
        "html": markup.read_html,
        "pdf": office.read_pdf,
        "docx": office.read_docx,
        "jsonl": structured.read_jsonl,
        "json": structured.read_json,
        "csv": structured.read_csv,
        "tsv": structured.read_tsv,
    }[name]


# suffix -> reader name
FORMATS: dict[str, str] = {
    ".txt": "text",
    ".md": "text",
    ".markdown": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
}
# readers that take a binary stream instead of the whole file's bytes
STREAMING = {"jsonl"}


def format_of(path: Path) -> str | None:
    """The reader name for ``path`` (``.gz`` looks at the inner suffix), or None if unsupported."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def open_binary(path: Path):
    """Open ``path`` for reading bytes (one place, so tests can simulate an unreadable file)."""
    return path.open("rb")


class CappedStream(io.RawIOBase):
    """A read-only stream that raises ReadError once more than ``cap`` bytes were read from ``inner``."""

    def __init__(self, inner, cap: int, compressed: bool):
        self.inner, self.cap, self.compressed, self.count = inner, cap, compressed, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            n = self.inner.readinto(b)
        except (EOFError, gzip.BadGzipFile, OSError) as e:
            raise ReadError(f"cannot read file: {e.__class__.__name__}: {e}", "unreadable") from None
        self.count += n or 0
        if self.count > self.cap:
            what = "decompressed size" if self.compressed else "file size"
            raise ReadError(
                f"{what} exceeds the cap of {self.cap / 2**20:.0f} MB (prepare.max_file_mb)", "too-large"
            )
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_stream(path: Path, max_bytes: int) -> io.BufferedReader:
    """A buffered binary stream over ``path`` (decompressing ``.gz``) that stops past ``max_bytes``."""
    try:
        raw = open_binary(path)
        inner = gzip.GzipFile(fileobj=raw) if path.suffix.lower() == ".gz" else raw
    except OSError as e:
        raise ReadError(
            f"cannot read file: {e.__class__.__name__}: {e.strerror or e}", "unreadable"
        ) from None
    return io.BufferedReader(CappedStream(inner, max_bytes, path.suffix.lower() == ".gz"), 1 << 20)


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, decompressing ``.gz``; raises ReadError past ``max_bytes`` (a gzip bomb too)."""
    if path.suffix.lower() != ".gz":
        try:
            size = path.stat().st_size
        except OSError as e:
            raise ReadError(f"cannot read file: {e.strerror or e}", "unreadable") from None
        if size > max_bytes:
            raise ReadError(
                f"file size exceeds the cap of {max_bytes / 2**20:.0f} MB (prepare.max_file_mb)", "too-large"
            )
    with open_stream(path, max_bytes) as f:
        return f.read()


def read(path: Path, opts: ReadOptions) -> Iterator[Record]:
    """Yield the documents of ``path`` with the reader its suffix selects."""
    fmt = format_of(path)
    if fmt is None:
        raise ReadError(
            f"unsupported file type '{''.join(path.suffixes) or '(none)'}'; supported: {', '.join(FORMATS)} (+ .gz)",
            "unsupported-type",
        )
    if fmt in STREAMING:
        with open_stream(path, opts.max_bytes) as f:
            yield from _load(fmt)(f, path, opts)
        return
    data = read_bytes(path, opts.max_bytes)
    if not data:
        raise ReadError(
            "empty file" + (" (after decompression)" if path.suffix.lower() == ".gz" else ""), "empty"
        )
    yield from _load(fmt)(data, path, opts)
