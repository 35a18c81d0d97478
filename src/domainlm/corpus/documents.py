"""The corpus folder format that `domainlm prepare` writes and every later stage reads.

corpus/documents.jsonl   one {"id", "text", "split", "source", ...} per line
corpus/quarantine.jsonl  inputs that were not kept, with their reason
corpus/stats.json        counts, and how the corpus was made
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from domainlm.errors import UserError

SPLITS = ("train", "validation", "test")


def read_documents(corpus: str | Path, split: str | None = None) -> Iterator[dict]:
    """Stream the documents of a corpus folder (optionally one split)."""
    path = Path(corpus) / "documents.jsonl"
    if not path.is_file():
        raise UserError(
            f"'{corpus}' is not a corpus folder (no documents.jsonl)", "Run `domainlm prepare` first"
        )
    with path.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if split is None or doc["split"] == split:
                yield doc
