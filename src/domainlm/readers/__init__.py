"""Readers: one per file format, each ``read(path, opts) -> Iterator[Record]``.

A reader yields the documents of one file; it raises :class:`ReadError` with a human reason when the
file cannot be used (the caller puts the file in quarantine; the run goes on). ``.gz`` files are
decompressed with a cap on the expanded size.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


class ReadError(Exception):
    """A file (or one record of it) that cannot be used, with the reason to report."""


@dataclass
class Record:
    """One document read from a file. ``key`` locates it inside the file (line, row, page)."""

    text: str
    key: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class ReadOptions:
    text_field: str = "text"
    text_column: str = "text"
    max_bytes: int = 512 * 2**20


def _load(name: str) -> Callable[[bytes, Path, ReadOptions], Iterator[Record]]:
    from . import markup, office, structured, text

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


def format_of(path: Path) -> str | None:
    """The reader name for ``path`` (``.gz`` looks at the inner suffix), or None if unsupported."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, decompressing ``.gz``; raises ReadError past ``max_bytes`` (a gzip bomb too)."""
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        else:
            if path.stat().st_size > max_bytes:
                raise ReadError(f"file is larger than the cap of {max_bytes / 2**20:.0f} MB (prepare.max_file_mb)")
            data = path.read_bytes()
    except ReadError:
        raise
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ReadError(f"cannot read file: {e.__class__.__name__}: {e}") from None
    if len(data) > max_bytes:
        raise ReadError(f"decompressed size exceeds the cap of {max_bytes / 2**20:.0f} MB (prepare.max_file_mb)")
    return data


def read(path: Path, opts: ReadOptions) -> Iterator[Record]:
    """Yield the documents of ``path`` with the reader its suffix selects."""
    fmt = format_of(path)
    if fmt is None:
        raise ReadError(f"unsupported file type '{''.join(path.suffixes) or '(none)'}'; supported: {', '.join(FORMATS)} (+ .gz)")
    data = read_bytes(path, opts.max_bytes)
    yield from _load(fmt)(data, path, opts)


def as_stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
