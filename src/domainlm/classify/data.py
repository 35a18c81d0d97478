"""Labelled data for `domainlm finetune`: read CSV/JSONL/Parquet rows, and split them into folds.

Splits are by document: identical texts (after collapsing whitespace and case) share a group and so a
fold; folds are stratified by label and fixed by the seed (scikit-learn's ``StratifiedGroupKFold``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from domainlm.config import FinetuneConfig
from domainlm.errors import UserError

READERS = ("csv", "jsonl", "parquet")


@dataclass
class Dataset:
    texts: list[str]
    labels: list[list[str]]  # one label per document unless multi-label
    label_names: list[str]
    path: Path
    multi: bool = False

    def targets(self):
        """(N,) class indices, or (N, C) 0/1 matrix for multi-label."""
        import numpy as np

        index = {n: i for i, n in enumerate(self.label_names)}
        if self.multi:
            y = np.zeros((len(self.labels), len(self.label_names)), dtype=np.float32)
            for r, labs in enumerate(self.labels):
                for lab in labs:
                    y[r, index[lab]] = 1
            return y
        return np.array([index[lab[0]] for lab in self.labels], dtype=np.int64)


def _rows(path: Path):
    """(row number, dict or None if malformed) for each data row; row numbers as a user counts them."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        with path.open(encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                yield i, row if isinstance(row, dict) else None
    elif suffix in ("csv", "tsv"):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == "tsv" else ",")
            for i, row in enumerate(reader, 2):  # line 1 is the header
                yield i, None if None in row or None in row.values() else row
    elif suffix == "parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist(), 1):
            yield i, row
    else:
        raise UserError(f"'{path}' has an unsupported extension", f"Use one of: {', '.join(READERS)}")


def load_dataset(path: str | Path, cfg: FinetuneConfig) -> Dataset:
    """Read texts and labels; any bad row is a UserError naming the file, the row and the fix."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"data file '{p}' does not exist", "Pass a CSV, JSONL or Parquet file")
    texts, labels = [], []
    allowed = set(cfg.labels) if cfg.labels else None
    for i, row in _rows(p):
        if row is None:
            raise UserError(
                f"{p}, row {i}: malformed row (not a JSON object / wrong number of columns)",
                "Fix or remove that row",
            )
        text = row.get(cfg.text_field)
        if not isinstance(text, str) or not text.strip():
            fields = ", ".join(map(str, row))
            raise UserError(
                f"{p}, row {i}: no text in field '{cfg.text_field}'",
                f"Fill it or remove the row; or name the text field with --text-field (this row has: {fields})",
            )
        raw = row.get(cfg.label_field)
        if raw is None or raw == "" or raw == []:
            raise UserError(
                f"{p}, row {i}: no label in field '{cfg.label_field}'",
                "Give every row a label, or name the label field with --label-field",
            )
        if cfg.multi_label:
            labs = (
                [str(x).strip() for x in raw]
                if isinstance(raw, list)
                else [s.strip() for s in str(raw).split(cfg.label_sep)]
            )
            labs = sorted({x for x in labs if x})
        else:
            if isinstance(raw, list):
                raise UserError(
                    f"{p}, row {i}: the label is a list", "Pass --multi-label for several labels per row"
                )
            labs = [str(raw).strip()]
        if allowed is not None:
            unknown = [x for x in labs if x not in allowed]
            if unknown:
                raise UserError(
                    f"{p}, row {i}: unknown label '{unknown[0]}'",
                    f"Use one of: {', '.join(sorted(allowed))}, or add it to --labels",
                )
        texts.append(text)
        labels.append(labs)
    if not texts:
        raise UserError(f"data file '{p}' has no rows", "Add rows with a text and a label")
    names = list(cfg.labels) if cfg.labels else sorted({x for labs in labels for x in labs})
    if len(names) < 2:
        raise UserError(
            f"{p}: only one label ('{names[0]}') in the data", "A classifier needs at least two labels"
        )
    return Dataset(texts, labels, names, p, cfg.multi_label)


def document_groups(texts: list[str]) -> list[str]:
    """Identical texts (after collapsing whitespace and case) share a group, so they share a fold."""
    return [hashlib.sha1(" ".join(t.lower().split()).encode()).hexdigest() for t in texts]


def _splitter(y, n: int, seed: int):
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    if y.ndim == 1:
        return StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
    return GroupKFold(n_splits=n)


def _strata(y):
    return y if y.ndim == 1 else y.argmax(1)  # multi-label: stratify on the first label (approximate)


def validation_split(texts: list[str], y, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) positions in ``texts`` for early stopping: stratified, grouped, seeded.

    ``make_splits`` cuts each fold's training part with this same function, so a method that receives
    a fold's training documents and calls it gets exactly that fold's (train, validation) split.
    """
    import numpy as np
    from sklearn.model_selection import GroupKFold

    groups = np.array(document_groups(texts))
    idx = np.arange(len(texts))
    n_inner = max(2, round(1 / val_fraction))
    try:
        with warnings.catch_warnings():
            # a class with fewer documents than inner folds is simply absent from some validation
            # parts; sklearn's warning about it would repeat for every fit of every fold
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            tr, va = next(_splitter(y, n_inner, seed).split(idx, _strata(y), groups))
    except ValueError:  # too few groups for the inner split: fall back to a plain grouped split
        tr, va = next(GroupKFold(n_splits=2).split(idx, groups=groups))
    return tr.tolist(), va.tolist()


def make_splits(ds: Dataset, cfg: FinetuneConfig) -> list[tuple[list[int], list[int], list[int]]]:
    """(train, validation, test) document indices per fold: stratified, grouped, seeded."""
    import numpy as np

    y = ds.targets()
    groups = np.array(document_groups(ds.texts))
    strat = _strata(y)
    counts = np.bincount(strat, minlength=len(ds.label_names))
    k = cfg.folds if cfg.folds > 1 else max(2, round(1 / cfg.test_fraction))
    rare = [ds.label_names[c] for c in range(len(counts)) if 0 < counts[c] < k]
    if rare and y.ndim == 1:
        raise UserError(
            f"{ds.path}: label '{rare[0]}' has {counts[ds.label_names.index(rare[0])]} documents, "
            f"fewer than the {k} splits",
            "Merge rare labels, add documents or lower --folds",
        )
    folds = []
    outer = list(_splitter(y, k, cfg.seed).split(np.arange(len(ds.texts)), strat, groups))
    for train_val, test in outer[: cfg.folds if cfg.folds > 1 else 1]:
        tr, va = validation_split([ds.texts[i] for i in train_val], y[train_val], cfg.val_fraction, cfg.seed)
        folds.append((train_val[tr].tolist(), train_val[va].tolist(), test.tolist()))
    return folds
