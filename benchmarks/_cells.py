"""Cells of a long benchmark study: one process per step, one JSON file per finished cell, so it resumes.

Shared by the studies that cut themselves into cells (``model_selection.py``; ``time_to_quality.py``
follows the same pattern and can import it). A cell's file is written atomically (``.tmp`` then
rename) only when the cell finished: a stopped study reruns only the cells without a file.

Each step of a cell is a child process whose CPU seconds and peak RSS come from ``os.wait4`` (the
kernel's accounting of that child and the children it waited for), and the load average is read
before and after, so a cell taken on a busy machine says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMAT_VERSION = 1


def spdx_path() -> Path:
    """The SPDX licence texts (domainlm.datafiles: $DOMAINLM_SPDX, else ../shared/data/ beside the repo)."""
    from domainlm.datafiles import spdx_path as find

    return find()


def child_env(threads: int) -> dict:
    """The environment of every child: fixed threads, offline, this checkout's src first."""
    return dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
        PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )


@dataclass
class Step:
    """What one child process cost."""

    rc: int
    cpu_s: float  # user + system seconds of the child and its waited-for children
    wall_s: float
    peak_rss_mb: float
    output: str  # the tail of stdout + stderr

    def as_dict(self) -> dict:
        return {
            "cpu_s": round(self.cpu_s, 2),
            "wall_s": round(self.wall_s, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def run_step(cmd: list[str], threads: int, check: bool = True) -> Step:
    """Run ``cmd`` as a child; its CPU time and peak RSS from wait4. ``check``: exit on failure."""
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=child_env(threads), stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.seek(0)
        out = log.read()[-8000:]
    # ru_maxrss is in kilobytes on Linux
    step = Step(p.returncode, ru.ru_utime + ru.ru_stime, wall, ru.ru_maxrss / 1024, out)
    if check and step.rc != 0:
        sys.stderr.write(out)
        raise SystemExit(f"failed ({step.rc}): {' '.join(cmd[:8])} ...")
    return step


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def machine_facts() -> dict:
    """domainlm.machine.describe() plus the CPU flags that decide the speed path (bf16, AVX-512, AMX)."""
    from domainlm import machine

    flags = sorted(f for f in machine.cpu_flags() if f.startswith(("avx", "amx", "fma", "sse4")))
    return machine.describe() | {"flags": flags}


class CellStore:
    """``folder/KEY.json`` per finished cell."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key.replace(' ', '_').replace('/', '_')}.json"

    def get(self, key: str) -> dict | None:
        p = self.path(key)
        if not p.is_file():
            return None
        data = json.loads(p.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise SystemExit(f"{p}: cell format {data.get('format_version')}, expected {FORMAT_VERSION}")
        return data

    def put(self, key: str, cell: dict) -> dict:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        cell = {"format_version": FORMAT_VERSION, **cell}
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(cell, indent=2))
        tmp.replace(p)  # a cell file is complete or absent
        return cell

    def all(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))]
