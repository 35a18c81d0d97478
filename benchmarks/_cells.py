"""Cells of a long benchmark study: one process per step, one JSON file per finished cell, so it resumes.

Shared by the studies that cut themselves into cells (``model_selection.py``, ``time_to_quality.py``),
with their corpora (demo, spdx), tokenizer and probes. A cell's file is written atomically (``.tmp`` then
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


def pydocs_sections(min_chars: int = 3000) -> list[tuple[str, str]]:
    """The Python language reference's topics as CPython ships them (``pydoc_data.topics``, the text of
    `help('TOPIC')`), each cut at paragraph ends into sections of at least ``min_chars`` characters:
    (name, text). A third kind of text for the study's checks: technical reference with code, ~0.46 MB."""
    from pydoc_data.topics import topics

    out = []
    for topic in sorted(topics):
        part: list[str] = []
        for para in topics[topic].split("\n\n"):
            part.append(para)
            if sum(map(len, part)) >= min_chars:
                out.append((f"{topic}-{len(out)}", "\n\n".join(part)))
                part = []
        if part:
            out.append((f"{topic}-{len(out)}", "\n\n".join(part)))
    return out


def study_corpus(name: str, base: Path) -> Path:
    """``base/corpus``, prepared once: ``demo`` (the Constitution of India, as `domainlm demo` writes it),
    ``spdx`` (the licence texts, text and id only) or ``pydocs`` (``pydocs_sections``; in no study, for
    model_selection's ``--validate-new``)."""
    from domainlm.corpus.prepare import prepare
    from domainlm.demo import write_demo_corpus

    corpus = base / "corpus"
    if not (corpus / "documents.jsonl").is_file():
        if name == "demo":
            raw = write_demo_corpus(base / "raw").parent
        else:
            if name == "pydocs":
                rows = [{"text": t, "id": n} for n, t in pydocs_sections()]
            else:
                rows = [json.loads(line) for line in spdx_path().read_text(encoding="utf-8").splitlines()]
            raw = base / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            (raw / f"{name}.jsonl").write_text(
                "".join(json.dumps({"text": r["text"], "id": r["id"]}) + "\n" for r in rows), encoding="utf-8"
            )
        prepare([raw], corpus)
    return corpus


def study_tokenizer(corpus: Path, tok: Path) -> Path:
    """The demo's tokenizer (WordPiece, an 8k target; the constitution yields ~4.3k), trained once."""
    from domainlm.tokens.tokenizer import train_tokenizer

    if not (tok / "tokenizer.json").is_file():
        train_tokenizer(corpus, tok, kind="wordpiece", vocab_size=8000, style="bert")
    return tok


def study_probes(name: str, corpus: Path, tok: Path, base: Path) -> Path:
    """Cloze probes: the shipped constitution set for ``demo``, else 60 drawn from the test split the way
    the demo draws its examples (written once to ``base/probes.jsonl``)."""
    from domainlm.demo import cloze_examples
    from domainlm.evaluate.lm import PROBE_SETS
    from domainlm.tokens.tokenizer import load_tokenizer

    if name == "demo":
        return PROBE_SETS["constitution"]
    probes = base / "probes.jsonl"
    if not probes.is_file():
        rows = [{"text": t, "answers": [a]} for t, a in cloze_examples(corpus, load_tokenizer(tok), n=60)]
        probes.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return probes


def run_recipe(run_dir: Path) -> dict:
    """The recipe a run trained with, as its config.yaml resolved it (the preset's measured lr, warm-up,
    masking rate, sequence, batch, weight decay under any --set): a stored cell says which recipe its
    numbers are of after a preset's recipe changes."""
    from domainlm.config import read_run_config
    from domainlm.pretrain.presets import RECIPE_KEYS

    t = read_run_config(run_dir).train
    return {k: getattr(t, k) for k in RECIPE_KEYS}


# a token budget's wall clock: only a cap (the schedule follows the tokens)
TOKEN_CAP = "2h"


def token_limit(tokens: int) -> list[str]:
    """`domainlm pretrain`'s flags for a run trained to ``tokens``: the schedule sized to them, the clock
    only capped (``TOKEN_CAP``)."""
    return ["--max-tokens", str(tokens), "--budget", TOKEN_CAP]


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


def machine_cpu_s() -> float | None:
    """CPU seconds every process of this machine has used since boot (/proc/stat: user, nice, system,
    irq, softirq, steal), or None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return None
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its reaped children (every run_step child is reaped by wait4)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Contention:
    """What other processes used while a cell ran: the machine's CPU seconds minus this process tree's.
    A 1-minute load average cannot tell that apart from the cell's own threads; this can."""

    def __init__(self):
        self.machine0, self.own0, self.t0 = machine_cpu_s(), own_cpu_s(), time.perf_counter()

    def other_cpu_s(self) -> float | None:
        now = machine_cpu_s()
        if now is None or self.machine0 is None:
            return None
        return round(max(0.0, (now - self.machine0) - (own_cpu_s() - self.own0)), 1)


def machine_facts() -> dict:
    """domainlm.machine.describe() plus the CPU flags that decide the speed path (bf16, AVX-512, AMX)."""
    from domainlm import machine

    flags = sorted(f for f in machine.cpu_flags() if f.startswith(("avx", "amx", "fma", "sse4")))
    return machine.describe() | {"flags": flags}


def machine_tag(m: dict | None) -> str:
    """A short name for the speed class of a machine_facts() dict: CPU, cores, widest vector unit, bf16.
    Cells with different tags measured different machines and do not share a curve."""
    m = m or {}
    flags = set(m.get("flags") or ())
    isa = (
        "amx"
        if "amx_tile" in flags
        else "avx512"
        if "avx512f" in flags
        else "avx2"
        if "avx2" in flags
        else "x86"
    )
    cpu = "".join(ch if ch.isalnum() else "-" for ch in str(m.get("cpu", "cpu")).lower()).strip("-")
    return f"{cpu}-{m.get('cores', '?')}c-{isa}" + ("-bf16" if m.get("bf16") else "")


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
