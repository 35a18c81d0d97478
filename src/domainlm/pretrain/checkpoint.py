"""Atomic, validated checkpoints (DESIGN.md, decision 5). No pickle: tensors in safetensors, the rest JSON.

Write: ``checkpoints/.staging-<step>/`` <- files, each fsynced; ``COMPLETE`` (sizes + sha256) last; then
rename to ``checkpoints/step-<step>/`` and fsync the folder. A crash at any point leaves either the old set
or the new one. Resume validates ``COMPLETE`` against the files and falls back to the newest valid one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from domainlm.formats import check_format

FORMAT_VERSION = 1
MARKER = "COMPLETE"


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into flat tensors (safetensors) and JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().clone()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict) -> None:
    state: dict = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for key, v in rest["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


def weights(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A copy of the model's weights as (tensors, aliases): tied weights share storage and safetensors
    refuses aliases, so each storage is copied once and the other names point at it."""
    msd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    seen: dict[int, str] = {}
    aliases: dict[str, str] = {}
    unique: dict[str, torch.Tensor] = {}
    for k, v in msd.items():
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen and msd[seen[ptr]].shape == v.shape:
            aliases[k] = seen[ptr]
        else:
            seen[ptr] = k
            unique[k] = v.clone()
    return unique, aliases


def save(
    ckpt_dir: Path,
    step: int,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    state: dict,
    keep: int = 2,
    best: tuple[dict[str, torch.Tensor], dict[str, str]] | None = None,
) -> Path:
    """Atomically write checkpoint ``step``; keep the newest ``keep`` complete ones. ``best``: another
    set of weights (``weights()``) stored beside the model's, e.g. those of the best validation so far."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    staging = ckpt_dir / f".staging-{step}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        final = _write(ckpt_dir, staging, step, model, opt, state, best)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # e.g. disk full: the complete ones stay untouched
        raise
    for old in complete(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write(
    ckpt_dir: Path,
    staging: Path,
    step: int,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    state: dict,
    best: tuple[dict[str, torch.Tensor], dict[str, str]] | None,
) -> Path:
    from safetensors.torch import save_file

    unique, aliases = weights(model)
    save_file(unique, str(staging / "model.safetensors"))
    if best is not None:
        save_file(best[0], str(staging / "best.safetensors"))
        state = state | {"best_aliases": best[1]}
    otensors, orest = optimizer_tensors(opt)
    save_file(otensors, str(staging / "optimizer.safetensors"))
    (staging / "optimizer.json").write_text(json.dumps(orest))
    (staging / "state.json").write_text(
        json.dumps({"format_version": FORMAT_VERSION, "step": step, "aliases": aliases, **state}, indent=2)
    )
    files = {}
    for p in sorted(staging.iterdir()):
        _fsync_file(p)
        files[p.name] = {"bytes": p.stat().st_size, "sha256": _sha(p)}
    marker = staging / MARKER
    marker.write_text(json.dumps({"step": step, "files": files}, indent=2))
    _fsync_file(marker)
    _fsync_dir(staging)
    final = ckpt_dir / f"step-{step:09d}"
    # re-saving a step (the final save after a periodic one): the old copy stays valid until replaced
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staging, final)
    _fsync_dir(ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)
    return final


def is_valid(path: Path) -> bool:
    """True if ``path`` has a COMPLETE marker whose sizes and hashes match its files."""
    marker = path / MARKER
    try:
        info = json.loads(marker.read_text())
        return all(
            (path / n).stat().st_size == f["bytes"] and _sha(path / n) == f["sha256"]
            for n, f in info["files"].items()
        )
    except (OSError, ValueError, KeyError):
        return False


def complete(ckpt_dir: Path) -> list[Path]:
    """Checkpoint folders with a marker, oldest first (not hash-validated: see ``latest_valid``)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob("step-*") if (p / MARKER).is_file())


def latest_valid(ckpt_dir: Path, on_skip=None) -> Path | None:
    """The newest checkpoint that validates, skipping (not deleting) damaged ones; ``on_skip(path)`` is
    told of each one skipped."""
    for p in reversed(complete(ckpt_dir)):
        if is_valid(p):
            return p
        if on_skip is not None:
            on_skip(p)
    return None


def load(
    path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer | None, device: torch.device | None = None
) -> dict:
    """Restore model (and optimizer) from checkpoint ``path`` onto ``device`` (default CPU); returns its
    state dict. Checkpoints do not record a device: one written on a GPU resumes on a CPU and back."""
    from safetensors.torch import load_file

    where = str(device or "cpu")
    state = json.loads((path / "state.json").read_text())
    check_format(state, path, FORMAT_VERSION, "checkpoint", "domainlm pretrain --resume never")
    tensors = load_file(str(path / "model.safetensors"), device=where)
    for k, src in state.get("aliases", {}).items():
        tensors[k] = tensors[src]
    model.load_state_dict(tensors)
    if opt is not None:
        load_optimizer(
            opt,
            load_file(str(path / "optimizer.safetensors"), device=where),
            json.loads((path / "optimizer.json").read_text()),
        )
    return state


def load_best(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """The extra weights ``save(best=...)`` stored in checkpoint ``path`` (on the CPU), or None."""
    from safetensors.torch import load_file

    if not (path / "best.safetensors").is_file():
        return None
    state = json.loads((path / "state.json").read_text())
    return load_file(str(path / "best.safetensors"), device="cpu"), state.get("best_aliases", {})


def load_weights(model: torch.nn.Module, best: tuple[dict[str, torch.Tensor], dict[str, str]]) -> None:
    """Put a ``weights()`` copy back into ``model`` (on the model's device)."""
    tensors, aliases = best
    tensors = dict(tensors)
    for k, src in aliases.items():
        tensors[k] = tensors[src]
    model.load_state_dict(tensors)
