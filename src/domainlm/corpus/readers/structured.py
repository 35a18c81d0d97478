"""JSONL / JSON / CSV / TSV: one record per line or row; the text field is configurable.

A bad line or row (not JSON, field missing, not a string) is a quarantined record, not an error for the
whole file: a ``Record`` with ``error`` set. JSONL is streamed line by line (constant memory); JSON, CSV
and TSV are read whole, bounded by ``prepare.max_file_mb``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from domainlm.corpus.readers import ReadError, ReadOptions, Record
from domainlm.corpus.readers.text import decode


def _from_obj(obj, field: str, key: str) -> Record:
    if not isinstance(obj, dict):
        return Record("", key, error=f"{key}: not a JSON object")
    if field not in obj:
        fields = ", ".join(list(obj)[:10])
        return Record("", key, error=f"{key}: no field '{field}' (fields: {fields}); set --text-field")
    text = obj[field]
    if not isinstance(text, str):
        return Record("", key, error=f"{key}: field '{field}' is {type(text).__name__}, not text")
    meta = {k: v for k, v in obj.items() if k != field and isinstance(v, str | int | float | bool)}
    return Record(text, key, meta)


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return decode(raw)


def read_jsonl(stream, path: Path, opts: ReadOptions) -> Iterator[Record]:
    """One JSON object per line, read from a binary stream one line at a time."""
    n = 0
    for n, raw in enumerate(stream, start=1):
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        key = f"line {n}"
        try:
            obj = json.loads(_decode_line(raw))
        except ReadError as e:
            yield Record("", key, error=f"{key}: {e}")
            continue
        except (json.JSONDecodeError, RecursionError) as e:
            yield Record("", key, error=f"{key}: not valid JSON ({getattr(e, 'msg', e.__class__.__name__)})")
            continue
        yield _from_obj(obj, opts.text_field, key)
    if n == 0:
        raise ReadError("empty file", "empty")


def read_json(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    try:
        obj = json.loads(decode(data))
    except json.JSONDecodeError as e:
        raise ReadError(f"not valid JSON ({e.msg} at line {e.lineno})", "bad-json") from None
    except RecursionError:
        raise ReadError("not valid JSON (nested too deeply)", "bad-json") from None
    items = obj if isinstance(obj, list) else [obj]
    for n, item in enumerate(items):
        yield _from_obj(item, opts.text_field, f"item {n}")


def _read_delimited(data: bytes, opts: ReadOptions, delimiter: str) -> Iterator[Record]:
    csv.field_size_limit(opts.max_bytes)
    reader = csv.DictReader(io.StringIO(decode(data)), delimiter=delimiter)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as e:
        raise ReadError(f"not a valid CSV/TSV file ({e})", "bad-csv") from None
    if fieldnames is None or opts.text_column not in fieldnames:
        cols = ", ".join(fieldnames or [])
        raise ReadError(f"no column '{opts.text_column}' (columns: {cols}); set --text-column", "bad-csv")
    n = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ReadError(f"not a valid CSV/TSV file after row {n} ({e})", "bad-csv") from None
        n += 1
        text = row.get(opts.text_column)
        if text is None:
            yield Record("", f"row {n}", error=f"row {n}: missing column '{opts.text_column}'")
            continue
        meta = {k: v for k, v in row.items() if k and k != opts.text_column and isinstance(v, str)}
        yield Record(text, f"row {n}", meta)


def read_csv(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    yield from _read_delimited(data, opts, ",")


def read_tsv(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    yield from _read_delimited(data, opts, "\t")
