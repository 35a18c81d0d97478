"""What this machine can do: cores, memory, bf16 support. Used to set threads and autocast."""

from __future__ import annotations

import os
import platform
from functools import lru_cache


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@lru_cache(maxsize=1)
def has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 natively (AVX-512 BF16 or AMX), so autocast pays."""
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def cores() -> int:
    """CPUs this process may use (cgroup/affinity aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def describe() -> dict:
    """Facts recorded in run folders and benchmark results."""
    import psutil

    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "cpu": model,
        "cores": cores(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "bf16": has_fast_bf16(),
        "torch": torch_version,
        "python": platform.python_version(),
    }


def resolve_bf16(setting: str, device: str = "cpu") -> bool:
    if setting == "on":
        return True
    if setting == "off":
        return False
    if device != "cpu":
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return has_fast_bf16()


def resolve_device(setting: str, local_rank: int = 0):
    """The torch device pretraining runs on: ``cuda:LOCAL_RANK`` (one GPU per torchrun process) when
    ``setting`` is cuda, or auto and torch sees a GPU; otherwise the CPU."""
    import torch

    from domainlm.errors import UserError

    if setting == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if setting == "cuda" and not available:
        raise UserError(
            "speed.device=cuda, but torch sees no CUDA GPU (CPU-only build or no driver)",
            "Install a CUDA build of torch on a GPU machine, or set speed.device=auto to train on the CPU",
        )
    if not available:
        return torch.device("cpu")
    n = torch.cuda.device_count()
    if local_rank >= n:
        raise UserError(
            f"process LOCAL_RANK {local_rank} has no GPU of its own (this node has {n})",
            f"Start torchrun with --nproc-per-node={n} or fewer",
        )
    return torch.device("cuda", local_rank)


def dist_backend(device) -> str:
    """The collective backend for ``device``: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"
