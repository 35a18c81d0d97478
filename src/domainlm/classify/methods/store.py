"""The saved form of a fitted classifier method: a folder with ``domainlm_method.json`` (kind, labels,
format_version, settings) beside safe files: skops for scikit-learn objects, loaded with an explicit
trusted-types list; safetensors for neural parts; fastText's own binary format. Never pickle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from domainlm.errors import UserError

FORMAT_VERSION = 1
META = "domainlm_method.json"
# types a saved classifier may hold beyond the scikit-learn/numpy/scipy ones skops trusts by default;
# anything else in a .skops file is refused (skops' own check: skops.io.get_untrusted_types)
TRUSTED_TYPES: list[str] = []


def is_method_folder(path: Path) -> bool:
    return (Path(path) / META).is_file()


def write_meta(dest: Path, kind: str, labels: list[str], multi: bool, **settings) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "labels": labels,
        "multi_label": multi,
        **settings,
    }
    (dest / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def read_meta(path: Path) -> dict:
    f = path / META
    if not f.is_file():
        raise UserError(f"'{path}' is not a saved domainlm classifier (no {META})", "Pass the model folder")
    meta = json.loads(f.read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{f}: format_version {meta.get('format_version')}, this domainlm reads {FORMAT_VERSION}",
            "Re-run `domainlm finetune` with this version",
        )
    return meta


def dump_skops(obj, path: Path) -> None:
    import skops.io as sio

    sio.dump(obj, str(path))


def load_skops(path: Path):
    """Load a .skops file; refuse any type outside skops' defaults and ``TRUSTED_TYPES``."""
    import skops.io as sio

    untrusted = [t for t in sio.get_untrusted_types(file=str(path)) if t not in TRUSTED_TYPES]
    if untrusted:
        raise UserError(
            f"{path} holds types this domainlm does not trust: {', '.join(untrusted)}",
            "Load only classifiers saved by `domainlm finetune`",
        )
    return sio.load(str(path), trusted=TRUSTED_TYPES)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def save_encoder(model, tok, dest: Path) -> None:
    """An encoder (``AutoModel``) and its tokenizer as a HF folder (safetensors)."""
    shutil.rmtree(dest, ignore_errors=True)
    model.save_pretrained(str(dest), safe_serialization=True)
    tok.save_pretrained(str(dest))
