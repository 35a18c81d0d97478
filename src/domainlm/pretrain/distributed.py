"""The process group of a pretraining run: torchrun's ranks, this process's device, stop signals.

Alone, a process is rank 0 of 1 and nothing here talks to anyone. Under torchrun (``WORLD_SIZE`` > 1)
the processes join one group: NCCL when each has a GPU (``cuda:LOCAL_RANK``), gloo between CPU
processes. Collectives are few and small: the per-step token count and logged losses (``sum``), the
reason to stop (``agree``), and barriers around the files rank 0 writes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# why a run stops; every process stops for the same one (agree() takes the maximum code)
STOP_REASONS = [None, "budget", "patience", "SIGINT", "SIGTERM", "max_tokens", "max_steps"]


@dataclass
class Dist:
    """The process group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (alone: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # we initialised the process group, so we destroy it
    device: Any = None  # torch.device this process trains on (collectives' tensors live there: NCCL)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes (fp64, so token counts stay exact)."""
        if not self.enabled:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def agree(self, reason: str | None) -> str | None:
        """Every process stops for the same reason when any one of them has one (rank 0 owns the clock)."""
        if not self.enabled:
            return reason
        import torch
        import torch.distributed as dist

        t = torch.tensor([STOP_REASONS.index(reason)], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return STOP_REASONS[int(t)]


def init_distributed(device_setting: str = "auto") -> Dist:
    """This process's device, and torchrun's process group when WORLD_SIZE > 1: NCCL when each process
    has a GPU (``cuda:LOCAL_RANK``), gloo between CPU processes."""
    from domainlm.machine import dist_backend, resolve_device

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting, local_rank)
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=device)
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(dist_backend(device))
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, owned, device)


@contextlib.contextmanager
def session(device_setting: str = "auto") -> Iterator[Dist]:
    """``init_distributed``, and the process group destroyed on the way out (if we made it)."""
    d = init_distributed(device_setting)
    try:
        yield d
    finally:
        if d.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


class StopSignal:
    """SIGINT/SIGTERM set a flag; the loop saves and exits cleanly at the next step."""

    def __init__(self):
        self.caught: str | None = None
        self._old: dict = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.caught = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
