"""JSONL / JSON / CSV / TSV: one record per line or row; the text field is configurable.

A bad line or row (not JSON, field missing, not a string) is reported as a quarantined record, not an
error for the whole file: ``Record`` with ``meta["error"]`` set.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from . import ReadError, ReadOptions, Record
from .text import decode


def _from_obj(obj, field: str, key: str) -> Record:
    if not isinstance(obj, dict):
        return Record("", key, {"error": f"{key}: not a JSON object"})
    if field not in obj:
        fields = ", ".join(list(obj)[:10])
        return Record("", key, {"error": f"{key}: no field '{field}' (fields: {fields}); set --text-field"})
    text = obj[field]
    if not isinstance(text, str):
        return Record("", key, {"error": f"{key}: field '{field}' is {type(text).__name__}, not text"})
    meta = {k: v for k, v in obj.items() if k != field and isinstance(v, str | int | float | bool)}
    return Record(text, key, meta)


def read_jsonl(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    for n, line in enumerate(decode(data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield Record("", f"line {n}", {"error": f"line {n}: not valid JSON ({e.msg})"})
            continue
        yield _from_obj(obj, opts.text_field, f"line {n}")


def read_json(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    try:
        obj = json.loads(decode(data))
    except json.JSONDecodeError as e:
        raise ReadError(f"not valid JSON ({e.msg} at line {e.lineno})") from None
    items = obj if isinstance(obj, list) else [obj]
    for n, item in enumerate(items):
        yield _from_obj(item, opts.text_field, f"item {n}")


def _read_delimited(data: bytes, opts: ReadOptions, delimiter: str) -> Iterator[Record]:
    csv.field_size_limit(opts.max_bytes)
    reader = csv.DictReader(io.StringIO(decode(data)), delimiter=delimiter)
    if reader.fieldnames is None or opts.text_column not in reader.fieldnames:
        cols = ", ".join(reader.fieldnames or [])
        raise ReadError(f"no column '{opts.text_column}' (columns: {cols}); set --text-column")
    for n, row in enumerate(reader, start=2):
        text = row.get(opts.text_column)
        if text is None:
            yield Record("", f"row {n}", {"error": f"row {n}: missing column '{opts.text_column}'"})
            continue
        meta = {k: v for k, v in row.items() if k and k != opts.text_column and v is not None}
        yield Record(text, f"row {n}", meta)


def read_csv(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    yield from _read_delimited(data, opts, ",")


def read_tsv(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    yield from _read_delimited(data, opts, "\t")
