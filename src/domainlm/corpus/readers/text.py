"""Plain text and Markdown: one file, one document; the encoding is detected, not assumed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from domainlm.corpus.readers import ReadError, ReadOptions, Record


def decode(data: bytes) -> str:
    """Bytes -> str: UTF-8 if it decodes, else the encoding charset-normalizer detects.

    Raises ReadError for data that looks binary (NUL bytes, or no plausible text encoding).
    """
    if not data:
        return ""
    if b"\x00" in data[:65536]:
        raise ReadError("file looks binary (NUL bytes), not text", "binary")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 4 * 2**20]).best()
    if best is None:
        raise ReadError("cannot detect a text encoding; the file looks binary", "binary")
    return data.decode(best.encoding, errors="replace")


def read(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    yield Record(decode(data))
