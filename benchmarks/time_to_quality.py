"""Time to quality: held-out quality reached at fixed wall-clock budgets (BENCHMARKS.md).

    python benchmarks/time_to_quality.py            # full: 1/3/10-minute budgets, demo + SPDX corpora
    python benchmarks/time_to_quality.py --quick    # smoke: 20-second budgets, demo corpus, < 3 min idle
    python benchmarks/time_to_quality.py --corpora demo --settings modernbert-mini,bert-mini@1e-3 --budgets 3m
    python benchmarks/time_to_quality.py --report   # the table, plot and RESULT of every stored cell
    python benchmarks/time_to_quality.py --corpora demo --settings modernbert-mini,"modernbert-mini wwm" --budgets 1.4Mtok

Each cell is one (corpus, setting, budget): `domainlm pretrain` in its own process, then
`domainlm evaluate` in another, on the corpus's one tokenizer and the evaluation's fixed masks (15%,
``evaluate.EVAL_SEED``, whatever masking rate the run trained with). A cell's result is written to
``benchmarks/cells/time_to_quality/MACHINE/CORPUS--SETTING--BUDGET.json`` as soon as it finishes
(``MACHINE`` is ``_cells.machine_tag``: CPU, cores, vector unit, bf16; tracked by git, so commit cells as
they land and the next session's fresh checkout resumes, or reports, them; ``--quick`` keeps its cells in
``WORK/quick/cells/``). A stopped run resumes where it stopped (delete a file to rerun its cell). Cells of
different machines never share a table or a curve: ``--report`` reads this machine's folder, or
``--machine TAG``'s.

Corpora: ``demo``, the Constitution of India prepared as `domainlm demo` does (its 8k-target WordPiece
tokenizer, the shipped cloze probes); ``spdx``, the 728 SPDX licence texts (``_cells.study_corpus``:
$DOMAINLM_SPDX, else the shared data folder beside the repository), with probes drawn from its test
split the way the demo draws its examples.

Settings (``SETTINGS``): the shipped default (modernbert-mini), the old default (bert-mini at lr 1e-3),
one lever at a time around the default (masking rate, dropout, learning rate, batch size), the same ModernBERT
trained by transformers' ``Trainer`` + ``DataCollatorForLanguageModeling`` (fp32, mlm_probability 0.15,
the same batch, sequence length, peak lr and warm-up; its schedule sized to the budget from a short speed
probe, as a competent user would), and causal LMs (llama-mini and gpt-mini, the GPT-2 baseline; and
llama-mini validated every 15 s, so that ``train.keep_best`` ships its best held-out step) scored
beside an interpolated Kneser-Ney 5-gram with the same tokenizer (fitted once per corpus on the train
split, scored on the first 10,000 validation tokens, 3,000 with --quick: NLTK's scorer is slow; the
neural perplexity covers up to 512 validation blocks).

Budgets are wall clock (``1m``, ``3m``: what a user's run buys on this machine) or tokens (``700ktok``,
``1.4Mtok``: `--max-tokens`, the schedule sized to them, a 2-hour clock only as a cap). A token budget
trains every setting on exactly the same tokens whatever the machine's speed that minute, so two recipe
levers can be told apart by less than the 6-7% a shared VM's speed drifts between cells; and it stands
for another machine's minutes (1.4M tokens: what the brief's bf16 machine trains in the demo's 3).
Token cells are listed in the table and drawn as bars (quality at those tokens), not on the minute lines.

Writes ``WORK/time_to_quality.md`` (the table) and ``WORK/time_to_quality.png`` (accuracy against
minutes, one line per setting) and prints the table, then one ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _cells

ROOT = _cells.ROOT
THREADS = 2
# the Trainer baseline masks at its collator's documented default, whatever the preset's recipe says
TRAINER_MLM_PROBABILITY = 0.15
# every masked-LM cell is scored on the same held-out blocks: 128 blocks of 128 tokens (the recipe's 16
# validation batches of 8), whatever sequence length and batch the cell trained at (`evaluate --seq-len`)
EVAL_SEQ_LEN = 128
EVAL_BLOCKS = 128


def _modernbert(*sets: str, cache: str | None = None) -> dict:
    """A modernbert-mini masked-LM setting: ``--set`` overrides on top of its recipe; ``cache="warm"``: an
    untimed run fills its compile cache first (compile_cache)."""
    return {"preset": "modernbert-mini", "objective": "mlm", "sets": list(sets)} | (
        {"compile_cache": cache} if cache else {}
    )


def _seeds(name: str, *sets: str, cache: str | None = None) -> dict:
    """``name seed1`` to ``name seed3``: the setting ``name`` with train.seed=N, to see how much of a
    difference the seed alone makes."""
    return {f"{name} seed{n}": _modernbert(*sets, f"train.seed={n}", cache=cache) for n in (1, 2, 3)}


def _by_trainer(*sets: str) -> dict:
    """modernbert-mini trained by transformers' Trainer (worker_trainer), with ``--set`` overrides on top of
    the preset's recipe."""
    return {"preset": "modernbert-mini", "objective": "mlm", "trainer": True, "sets": list(sets)}


# name -> how to train it: a preset and objective, and `--set` overrides on top of the preset's recipe
SETTINGS: dict[str, dict] = {
    "modernbert-mini": _modernbert(),
    "bert-mini@1e-3": {
        "preset": "bert-mini",
        "objective": "mlm",
        "sets": ["train.lr=1e-3", "train.warmup=0.06", "train.mlm_probability=0.15"],
    },
    "modernbert-mini mask15": _modernbert("train.mlm_probability=0.15"),
    "modernbert-mini mask30": _modernbert("train.mlm_probability=0.3"),
    "modernbert-mini mask50": _modernbert("train.mlm_probability=0.5"),
    # whole-word masking (Devlin et al.'s 2019 BERT-wwm release; Cui et al. 2019): every piece of a word
    # masked together, as the cloze probes mask whole words
    "modernbert-mini wwm": _modernbert("train.whole_word_mask=true"),
    # Adam's beta2 (the default 0.98 is RoBERTa's, for batches of 8k sequences): Porian et al. 2024
    # ("Resolving Discrepancies in Compute-Optimal Scaling of Language Models") found a higher beta2
    # (0.99-0.999) matters at small batch sizes, and the recipe's batch is 8 sequences
    "modernbert-mini beta2-0.999": _modernbert("train.adam_beta2=0.999"),
    "modernbert-mini beta2-0.95": _modernbert("train.adam_beta2=0.95"),
    # weight decay 0.1 (GPT-3, Brown et al. 2020; Llama, Touvron et al. 2023) against the default 0.01
    # (BERT, RoBERTa): a budget of ~20 passes over a small corpus may want the stronger regulariser
    "modernbert-mini wd0.1": _modernbert("train.weight_decay=0.1"),
    "modernbert-mini dropout0.1": _modernbert("model.dropout=0.1"),
    # a masking rate that falls over the budget (Ankner et al., EACL 2024, "Dynamic Masking Rate Schedules for MLM
    # Pretraining": 30% -> 15% beat constant rates for BERT): early steps learn from many masked tokens,
    # the last ones from the evaluation's 15%
    "modernbert-mini mask40to15": _modernbert("train.mlm_probability_end=0.15"),
    "modernbert-mini mask50to15": _modernbert("train.mlm_probability=0.5", "train.mlm_probability_end=0.15"),
    "modernbert-mini mask40to15 seed1": _modernbert("train.mlm_probability_end=0.15", "train.seed=1"),
    # no gradient clipping (RoBERTa's fairseq recipe); at 1.0 the norm is clipped on 98-100% of steps
    "modernbert-mini noclip": _modernbert("train.grad_clip=0"),
    "modernbert-mini lr2e-3": _modernbert("train.lr=2e-3"),
    # the peak learning rate either side of 1e-3 at equal tokens: batch 4 learns more per token than batch 8
    # (more steps), so the step size may be what batch 8 lacks
    "modernbert-mini lr1.4e-3": _modernbert("train.lr=1.4e-3"),
    "modernbert-mini lr1.4e-3 seed1": _modernbert("train.lr=1.4e-3", "train.seed=1"),
    "modernbert-mini lr7e-4": _modernbert("train.lr=7e-4"),
    "modernbert-mini lr1.7e-3": _modernbert("train.lr=1.7e-3"),
    "modernbert-mini lr2e-3 seed1": _modernbert("train.lr=2e-3", "train.seed=1"),
    "modernbert-mini batch16": _modernbert("train.batch_size=16"),
    "modernbert-mini batch8": _modernbert("train.batch_size=8"),
    "modernbert-mini batch4": _modernbert("train.batch_size=4"),
    # a second seed (initialisation and training masks; the evaluation's masks stay fixed), to see how
    # much of a lever's difference the seed alone makes
    "modernbert-mini seed1": _modernbert("train.seed=1"),
    "modernbert-mini batch4 seed1": _modernbert("train.batch_size=4", "train.seed=1"),
    # batch 4's cells above ran on the earlier recipe lr, 1e-3; these on lr 1.4e-3 (the recipe's since
    # 2026-12-06 20:36): whether the two levers (more steps, a larger step) add up
    "modernbert-mini batch4 lr1.4e-3": _modernbert("train.batch_size=4", "train.lr=1.4e-3"),
    "modernbert-mini batch4 lr1.4e-3 seed1": _modernbert(
        "train.batch_size=4", "train.lr=1.4e-3", "train.seed=1"
    ),
    "modernbert-mini batch8 mask15": _modernbert("train.batch_size=8", "train.mlm_probability=0.15"),
    "modernbert-mini batch8 lr2e-3": _modernbert("train.batch_size=8", "train.lr=2e-3"),
    "modernbert-mini batch8 dropout0.1": _modernbert("train.batch_size=8", "model.dropout=0.1"),
    "modernbert-mini batch32": _modernbert("train.batch_size=32"),
    # the warm-up's share of the schedule (the recipe's 6%: RoBERTa-large's 30k of 500k steps; never swept here):
    # issue #12's lever "learning rate and warm-up per preset"
    "modernbert-mini warmup0.02": _modernbert("train.warmup=0.02"),
    "modernbert-mini warmup0.02 seed1": _modernbert("train.warmup=0.02", "train.seed=1"),
    "modernbert-mini warmup0.15": _modernbert("train.warmup=0.15"),
    "modernbert-mini warmup0.15 seed1": _modernbert("train.warmup=0.15", "train.seed=1"),
    # sequence length at the same 1,024 tokens per step (issue #12's lever "sequence length and batch size,
    # in tokens per step"): 64 tokens costs less attention per token and gives each block less context;
    # 256, more. Scored on the same 128-token blocks as every cell (same_blocks)
    "modernbert-mini seq64": _modernbert("train.seq_len=64", "train.batch_size=16"),
    "modernbert-mini seq64 seed1": _modernbert("train.seq_len=64", "train.batch_size=16", "train.seed=1"),
    "modernbert-mini seq256": _modernbert("train.seq_len=256", "train.batch_size=4"),
    "modernbert-mini seq256 seed1": _modernbert("train.seq_len=256", "train.batch_size=4", "train.seed=1"),
    # train.optimizer=muon: Muon (Jordan et al. 2024) on the hidden matrices, AdamW on the rest, at the
    # recipe's lr (Muon's update scaled to AdamW's RMS, Liu et al. 2025); its authors and Moonshot report
    # ~2x AdamW's learning per token on large models and batches. At equal tokens it shows how much more
    # it learns per token, at equal minutes ("warm") whether that pays for its Newton-Schulz iterations
    "modernbert-mini muon": _modernbert("train.optimizer=muon"),
    **_seeds("modernbert-mini muon", "train.optimizer=muon"),
    "modernbert-mini muon batch16": _modernbert("train.optimizer=muon", "train.batch_size=16"),
    "modernbert-mini muon batch32": _modernbert("train.optimizer=muon", "train.batch_size=32"),
    "modernbert-mini muon warm": _modernbert("train.optimizer=muon", cache="warm"),
    **_seeds("modernbert-mini muon warm", "train.optimizer=muon", cache="warm"),
    # speed.compile: the encoder's layers compiled (regional compilation). "compile" cells start from a
    # warm compile cache (an untimed 3-step run of the same command first: any run after the machine's
    # first); "cold" cells from an empty one (a machine's first compiled run pays the compile in its budget)
    "modernbert-mini eager": _modernbert("speed.compile=off"),
    "modernbert-mini eager seed1": _modernbert("speed.compile=off", "train.seed=1"),
    # the default (speed.compile=auto) on a machine that has compiled the model before: auto compiles
    "modernbert-mini warm": _modernbert(cache="warm"),
    **_seeds("modernbert-mini warm", cache="warm"),
    # the default after the machine compiled the same preset for the other study corpus, on its tokenizer
    # (a user's run after `make demo`): the compiled layers never see the vocabulary, so auto compiles
    "modernbert-mini warm elsewhere": _modernbert(cache="elsewhere"),
    **_seeds("modernbert-mini warm elsewhere", cache="elsewhere"),
    "modernbert-mini compile": _modernbert("speed.compile=true", cache="warm"),
    "modernbert-mini compile cold": _modernbert("speed.compile=true", cache="cold"),
    "modernbert-mini compile cold seed1": _modernbert("speed.compile=true", "train.seed=1", cache="cold"),
    **_seeds("modernbert-mini compile", "speed.compile=true", cache="warm"),
    "modernbert-mini batch4 compile": _modernbert("train.batch_size=4", "speed.compile=true", cache="warm"),
    **_seeds("modernbert-mini batch4 compile", "train.batch_size=4", "speed.compile=true", cache="warm"),
    "trainer modernbert-mini": _by_trainer(),
    # the Trainer on the recipe's earlier lr: at 1.4e-3 it learns less in 10 minutes (48.6% against 55.5%)
    "trainer modernbert-mini lr1e-3": _by_trainer("train.lr=1e-3"),
    # a second seed of the strongest Trainer cell: how much of its 55.5% is the seed
    "trainer modernbert-mini lr1e-3 seed1": _by_trainer("train.lr=1e-3", "train.seed=1"),
    # the Trainer on batch 4's recipe: the fair reference for domainlm's batch-4 cells
    "trainer modernbert-mini batch4": _by_trainer("train.batch_size=4"),
    "llama-mini clm": {"preset": "llama-mini", "objective": "clm", "sets": []},
    # train.keep_best at work: validation every 15 s, model/ from the lowest held-out loss
    "llama-mini clm keep-best": {
        "preset": "llama-mini",
        "objective": "clm",
        "sets": ["train.eval_every=15s"],
    },
    "gpt-mini clm": {"preset": "gpt-mini", "objective": "clm", "sets": []},
}
DEFAULT = "modernbert-mini"
TRAINER = "trainer modernbert-mini"  # the Trainer settings on the default's model
FULL = {
    "demo": list(SETTINGS),
    "spdx": [DEFAULT, "bert-mini@1e-3", TRAINER, "llama-mini clm"],
}
QUICK = {"demo": [DEFAULT, "bert-mini@1e-3", "llama-mini clm"]}
BUDGETS = ["1m", "3m", "10m"]
EXTRA_BUDGETS = {DEFAULT: ["2m"]}  # the target: the Trainer's 10-minute accuracy within 2 minutes
# the full run's cells live in git, one folder per machine: a session's machine is fresh (and its kind
# can change), and only what is committed survives it
CELLS = ROOT / "benchmarks" / "cells" / "time_to_quality"


def seconds(budget: str) -> float:
    from domainlm.config import parse_duration

    return parse_duration(budget)


def budget_tokens(budget: str) -> int | None:
    """The tokens of a token budget (``700ktok``, ``1.4Mtok``, ``50000tok``); None for a duration."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kM]?)tok", budget)
    return None if m is None else round(float(m[1]) * {"": 1, "k": 1_000, "M": 1_000_000}[m[2]])


def budget_order(budget: str) -> tuple[int, float]:
    """Durations first, shortest first; then token budgets, smallest first."""
    n = budget_tokens(budget)
    return (0, seconds(budget)) if n is None else (1, float(n))


def check_budget(budget: str) -> str:
    if budget_tokens(budget) is None:
        from domainlm.errors import UserError

        try:
            seconds(budget)
        except UserError:
            raise SystemExit(
                f"--budgets: '{budget}' is neither a duration (1m, 3m, 90s) nor a token count (700ktok, 1.4Mtok)"
            ) from None
    return budget


# ----------------------------------------------------------------------------------------------------
# data: one corpus folder, one tokenizer and one probe file per corpus (built once, reused)


def setup_corpus(name: str, work: Path) -> dict:
    base = work / name
    corpus = _cells.study_corpus(name, base)
    tok = _cells.study_tokenizer(corpus, base / "tokenizer")
    return {"corpus": corpus, "tokenizer": tok, "probes": _cells.study_probes(name, corpus, tok, base)}


# ----------------------------------------------------------------------------------------------------
# one cell: train in a child process, evaluate in another


def _run(cmd: list[str], env: dict | None = None) -> str:
    p = subprocess.run(cmd, env=_cells.child_env(THREADS) | (env or {}), capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-6000:])
        raise SystemExit(f"failed: {' '.join(cmd[:6])} ...")
    return p.stdout


def train_cell(data: dict, setting: dict, budget: str, run_dir: Path) -> None:
    if setting.get("trainer"):
        if budget_tokens(budget) is not None:
            raise SystemExit(f"the Trainer's setting takes a duration, not the token budget '{budget}'")
        _run([sys.executable, __file__, "--worker", json.dumps({"data": _str(data), "setting": setting,
              "budget": budget, "run_dir": str(run_dir)})])  # fmt: skip
        return
    sets = [f"speed.threads={THREADS}", "train.eval_every=1h", "train.checkpoint_every=1h", *setting["sets"]]
    cmd = [sys.executable, "-m", "domainlm.cli", "pretrain", str(data["corpus"])]
    cmd += ["--tokenizer", str(data["tokenizer"]), "--preset", setting["preset"]]
    tokens = budget_tokens(budget)
    limit = ["--budget", budget] if tokens is None else _cells.token_limit(tokens)
    cmd += ["--objective", setting["objective"], *limit, "--name", run_dir.name]
    cmd += ["--runs-dir", str(run_dir.parent), "--resume", "never"]
    for s in sets:
        cmd += ["--set", s]
    _run(cmd, compile_cache(setting, run_dir, cmd))


def compile_cache(setting: dict, run_dir: Path, cmd: list[str]) -> dict:
    """The environment of a cell: its own torch compile cache, empty ("cold", unless the setting says
    otherwise: a run that compiles, as speed.compile=auto does at 3 minutes or more, pays its compile as
    a machine's first run would), or warmed by an untimed 3-step run of the same command, compiled
    ("warm": any later run; auto then compiles a budget of any length), or of the same command on the
    other study corpus and its tokenizer ("elsewhere": a run after the machine trained the same preset on
    another corpus, as after `make demo`)."""
    state = setting.get("compile_cache", "cold")
    work = run_dir.parent.parent
    cache = work / "compile-cache" / run_dir.name
    shutil.rmtree(cache, ignore_errors=True)
    env = {"TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "TRITON_CACHE_DIR": str(cache / "triton")}
    if state in ("warm", "elsewhere"):
        warm = run_dir.with_name(run_dir.name + "-warmup")
        first = list(cmd)
        if state == "elsewhere":  # cmd: python -m domainlm.cli pretrain CORPUS --tokenizer TOK ...
            mine = Path(cmd[4]).resolve().relative_to(work.resolve()).parts[0]
            other = setup_corpus("demo" if mine != "demo" else "spdx", work)
            first[4], first[first.index("--tokenizer") + 1] = str(other["corpus"]), str(other["tokenizer"])
        # compile on, last: the default (auto) leaves a 3-step run eager and would warm nothing
        _run([*first[: first.index("--name")], "--max-steps", "3", "--name", warm.name,
              *first[first.index("--name") + 2 :], "--set", "speed.compile=on"], env)  # fmt: skip
    return env


def evaluate_cell(data: dict, setting: dict, run_dir: Path, ngram_file: Path, ngram_tokens: int) -> dict:
    """`domainlm evaluate` on the run; the first causal cell of a corpus also fits the Kneser-Ney 5-gram
    (NLTK scores ~100 tokens/s, so once per corpus, on the first ``ngram_tokens`` validation tokens)."""
    cmd = [sys.executable, "-m", "domainlm.cli", "evaluate", str(run_dir), "--max-docs", "0"]
    fit_ngram = setting["objective"] == "clm" and not ngram_file.is_file()
    if fit_ngram:
        cmd += ["--baseline", "ngram", "--ngram-tokens", str(ngram_tokens)]
    elif setting["objective"] != "clm":
        cmd += ["--probes", str(data["probes"]), *same_blocks(run_dir)]
    _run(cmd)
    ev = json.loads((run_dir / "eval.json").read_text())
    if fit_ngram:
        ngram_file.write_text(json.dumps(ev["baseline"]["ngram"], indent=2))
    if setting["objective"] == "clm":
        ev["baseline"] = {"ngram": json.loads(ngram_file.read_text())}
    return ev


def same_blocks(run_dir: Path) -> list[str]:
    """`evaluate` flags that score a masked-LM run on EVAL_BLOCKS blocks of EVAL_SEQ_LEN tokens, as every
    other cell (the defaults follow the run's own sequence length and batch)."""
    batch = _cells.run_recipe(run_dir)["batch_size"]
    if EVAL_BLOCKS % batch:
        raise SystemExit(f"{run_dir.name}: batch {batch} does not divide the {EVAL_BLOCKS} evaluation blocks")
    return ["--seq-len", str(EVAL_SEQ_LEN), "--eval-batches", str(EVAL_BLOCKS // batch)]


def run_cell(
    work: Path, cells: Path, corpus: str, data: dict, name: str, budget: str, ngram_tokens: int, machine: str
) -> dict:
    """Train + evaluate one cell, or read its stored result."""
    key = f"{corpus}--{name.replace(' ', '_')}--{budget}"
    path = cells / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    setting = SETTINGS[name]
    run_dir = work / "runs" / key.replace("@", "at")
    load0, others = os.getloadavg()[0], _cells.Contention()
    t0 = time.perf_counter()
    train_cell(data, setting, budget, run_dir)
    ngram_file = cells / f"{corpus}--ngram.json"
    ngram_file.parent.mkdir(parents=True, exist_ok=True)
    ev = evaluate_cell(data, setting, run_dir, ngram_file, ngram_tokens)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    cell = {
        "format_version": 1,
        "corpus": corpus,
        "setting": name,
        "preset": setting["preset"],
        "objective": setting["objective"],
        "sets": setting["sets"],
        "recipe": cell_recipe(run_dir, setting),
        "compile_cache": setting.get("compile_cache", "cold"),
        "budget": budget,
        # a token budget's cell: the minutes it took (its place on no minute line; budget_tokens says so)
        "minutes": seconds(budget) / 60 if budget_tokens(budget) is None else summary["train_seconds"] / 60,
        "max_tokens": budget_tokens(budget),
        "tokens": summary["tokens"],
        "tokens_per_s": summary["tokens_per_s"],
        "train_seconds": summary["train_seconds"],
        "accuracy": ev.get("accuracy"),
        "loss": ev.get("loss"),
        "probe_top1": ev.get("probe_top1"),
        "probe_top5": ev.get("probe_top5"),
        "perplexity": ev.get("perplexity"),
        "ngram_perplexity": ev.get("baseline", {}).get("ngram", {}).get("perplexity"),
        "ngram_tokens": ev.get("baseline", {}).get("ngram", {}).get("tokens"),
        "cell_seconds": round(time.perf_counter() - t0, 1),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "other_cpu_s": others.other_cpu_s(),  # other processes' CPU seconds during the cell
        "machine": machine,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cell, indent=2))
    tmp.replace(path)  # a cell file is complete or absent
    return cell


def cell_recipe(run_dir: Path, setting: dict) -> dict:
    """The recipe the cell trained with, as its run's config.yaml resolved it (the preset's recipe under
    the setting's overrides): a stored cell says which lr it is of after a preset's recipe changes. The
    Trainer's masking rate is its collator's (TRAINER_MLM_PROBABILITY), not the config's."""
    trainer = {"mlm_probability": TRAINER_MLM_PROBABILITY} if setting.get("trainer") else {}
    return _cells.run_recipe(run_dir) | trainer


def _shown(p: Path) -> str:
    """A path as printed: relative to the repository where it lies inside it (no machine path in logs)."""
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def _str(d: dict) -> dict:
    return {k: str(v) for k, v in d.items()}


# ----------------------------------------------------------------------------------------------------
# the Trainer baseline (a child process): ModernBERT via transformers' Trainer, saved as a run folder


def worker_trainer(spec: dict) -> None:
    """Train the setting's preset with `Trainer` for ``budget``; write a run folder `domainlm evaluate` reads."""
    import torch
    import transformers
    from datasets import Dataset

    from domainlm import config as cfgmod
    from domainlm.config import RunConfig
    from domainlm.corpus.documents import read_documents
    from domainlm.pretrain import presets
    from domainlm.tokens.tokenizer import load_tokenizer, special_ids

    torch.set_num_threads(THREADS)
    data, setting, run_dir = spec["data"], spec["setting"], Path(spec["run_dir"])
    budget_s = seconds(spec["budget"])
    # the same resolved recipe (lr, warm-up, batch, sequence) domainlm would use for this preset
    cfg = cfgmod.load(
        RunConfig,
        None,
        setting["sets"],
        **{"corpus": data["corpus"], "tokenizer": data["tokenizer"], "model.preset": setting["preset"]},
    )
    cfg = presets.with_recipe(cfg)
    cfg = cfg.model_copy(update={"name": run_dir.name, "runs_dir": str(run_dir.parent)})
    cfg.speed.bf16 = "off"
    tok = load_tokenizer(data["tokenizer"])
    seq, batch = cfg.train.seq_len, cfg.train.batch_size
    hf_cfg = presets.make_config(
        setting["preset"], len(tok), max(seq, 512), special_ids(tok), attention="sdpa"
    )
    torch.manual_seed(cfg.train.seed)  # train.seed: initialisation and the collator's masks, as domainlm's
    model = presets.model_class(presets.family_of(setting["preset"]), "mlm")(hf_cfg)

    texts = [d["text"] for d in read_documents(data["corpus"], "train")]
    ds = Dataset.from_dict({"text": texts}).map(
        lambda b: tok(b["text"]), batched=True, remove_columns=["text"]
    )

    def group_texts(b):  # the run_mlm.py recipe
        cat = {k: sum(b[k], []) for k in b}
        n = (len(cat["input_ids"]) // seq) * seq
        return {k: [v[i : i + seq] for i in range(0, n, seq)] for k, v in cat.items()}

    ds = ds.map(group_texts, batched=True)
    collator = transformers.DataCollatorForLanguageModeling(
        tok, mlm=True, mlm_probability=TRAINER_MLM_PROBABILITY
    )

    class Clock(transformers.TrainerCallback):
        """Step end times; stops the run at ``limit`` seconds after it began (None: never)."""

        def __init__(self, limit: float | None):
            self.limit, self.t0, self.ends = limit, 0.0, []

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.perf_counter())
            if self.limit and self.ends[-1] - self.t0 >= self.limit:
                control.should_training_stop = True

    # the schedule is sized to the budget from a 6-step speed probe of the same model (first 2 dropped)
    probe = Clock(None)
    _trainer(model, ds, collator, cfg, run_dir / "probe", 6, [probe]).train()
    step_s = (probe.ends[-1] - probe.ends[1]) / (len(probe.ends) - 2)
    torch.manual_seed(cfg.train.seed)
    model = presets.model_class(presets.family_of(setting["preset"]), "mlm")(hf_cfg)
    steps = max(10, int(budget_s / step_s))
    clock = Clock(budget_s)
    trainer = _trainer(model, ds, collator, cfg, run_dir / "trainer-out", steps, [clock])
    trainer.train()
    train_s = time.perf_counter() - clock.t0
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "model").mkdir(exist_ok=True)
    model.save_pretrained(str(run_dir / "model"))
    tok.save_pretrained(str(run_dir / "model"))
    tok.save_pretrained(str(run_dir / "tokenizer"))
    cfgmod.dump(cfg, run_dir / "config.yaml")
    tokens = len(clock.ends) * batch * seq
    summary = {
        "tokens": tokens,
        "tokens_per_s": round(tokens / train_s, 1),
        "train_seconds": round(train_s, 2),
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary | {"planned_steps": steps}))


def _trainer(model, ds, collator, cfg, out: Path, steps: int, callbacks):
    import transformers

    args = transformers.TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg.train.batch_size,
        max_steps=steps,
        learning_rate=cfg.train.lr,
        warmup_steps=cfg.train.warmup,  # a float below 1: a fraction of the steps (transformers 5)
        weight_decay=cfg.train.weight_decay,
        max_grad_norm=cfg.train.grad_clip,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        seed=cfg.train.seed,
        disable_tqdm=True,
    )
    return transformers.Trainer(
        model=model, args=args, train_dataset=ds, data_collator=collator, callbacks=callbacks
    )


# ----------------------------------------------------------------------------------------------------
# report


def _pct(x) -> str:
    return "-" if x is None else f"{x:.1%}"


def table(cells: list[dict]) -> str:
    lines = [
        "| corpus | setting | lr | budget | tokens | tokens/s | masked acc | probe top-1 | probe top-5 "
        "| perplexity | 5-gram perplexity |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        ppl = "-" if c["perplexity"] is None else f"{c['perplexity']:.2f}"
        ng = "-" if c["ngram_perplexity"] is None else f"{c['ngram_perplexity']:.2f}"
        # the peak lr the cell trained at; "-": stored before cells recorded their recipe
        lr = (c.get("recipe") or {}).get("lr")
        lr = "-" if lr is None else f"{lr:g}"
        lines.append(
            f"| {c['corpus']} | {c['setting']} | {lr} | {c['budget']} | {c['tokens']:,} | {c['tokens_per_s']:,.0f} | "
            f"{_pct(c['accuracy'])} | {_pct(c['probe_top1'])} | {_pct(c['probe_top5'])} | {ppl} | {ng} |"
        )
    return "\n".join(lines)


def plot(cells: list[dict], path: Path) -> None:
    """Masked accuracy (MLM) and perplexity (CLM) against minutes: one line per setting, one column per corpus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = sorted({c["corpus"] for c in cells})
    fixed = [c for c in cells if c.get("max_tokens")]
    cells = [c for c in cells if not c.get("max_tokens")]
    rows = 3 if fixed else 2
    order = {name: k for k, name in enumerate(SETTINGS)}
    fig, axes = plt.subplots(rows, len(corpora), figsize=(9 * len(corpora), 4.5 * rows), squeeze=False)
    for j, corpus in enumerate(corpora):
        if fixed:
            _token_bars(axes[2][j], [c for c in fixed if c["corpus"] == corpus], corpus)
        for i, (metric, label) in enumerate(
            (("accuracy", "held-out masked accuracy"), ("perplexity", "perplexity / token"))
        ):
            ax = axes[i][j]
            lines: dict[
                str, list
            ] = {}  # label -> points, in SETTINGS' order (an earlier lr after its setting)
            for c in sorted(cells, key=lambda c: (order.get(c["setting"], len(order)), shown_name(c))):
                if c["corpus"] == corpus and c[metric] is not None:
                    lines.setdefault(shown_name(c), []).append((c["minutes"], c[metric]))
            for k, (name, pts) in enumerate(lines.items()):
                # tab20 and nine markers: every setting its own colour-and-marker pair (180 of them)
                style = {"color": plt.cm.tab20(k % 20), "marker": "osD^v<>ph"[k % 9], "lw": 1.5}
                ax.plot(*zip(*sorted(pts), strict=True), "-", label=name, **style)
            ng = [c["ngram_perplexity"] for c in cells if c["corpus"] == corpus and c["ngram_perplexity"]]
            if metric == "perplexity" and ng:
                ax.axhline(ng[0], ls="--", color="grey", label="Kneser-Ney 5-gram")
                ax.set_yscale("log")
            ax.set_title(f"{corpus}: {label}")
            ax.set_xlabel("wall-clock minutes")
            ax.grid(alpha=0.3)
            if ax.lines:  # beside the axes: the settings are many, and their points fill the plot
                ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
            else:
                _empty(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _token_bars(ax, cells: list[dict], corpus: str) -> None:
    """Masked accuracy (or perplexity) of each token-budget cell: one bar per setting and budget."""
    cells = sorted(cells, key=lambda c: (budget_order(c["budget"]), c["setting"]))
    metric = "accuracy" if any(c["accuracy"] is not None for c in cells) else "perplexity"
    cells = [c for c in cells if c[metric] is not None]
    ax.set_title(f"{corpus}: at fixed token budgets (the same tokens for every setting)")
    if not cells:
        _empty(ax)
        return
    labels = [f"{shown_name(c)} @ {c['budget']}" for c in cells]
    values = [c[metric] * (100 if metric == "accuracy" else 1) for c in cells]
    ax.barh(range(len(cells)), values, color="tab:blue")
    ax.set_yticks(range(len(cells)), labels, fontsize=7)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.1f}", va="center", fontsize=7)
    ax.set_xlabel("held-out masked accuracy (%)" if metric == "accuracy" else "perplexity / token")
    ax.grid(alpha=0.3, axis="x")


def _empty(ax) -> None:
    """A panel with nothing measured says so, instead of showing empty axes."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, "no cells of this kind stored", ha="center", va="center", transform=ax.transAxes,
            color="grey")  # fmt: skip


def shown_name(cell: dict) -> str:
    """The setting as the plot labels it: with the lr it trained at where that is not its preset's current
    recipe's and the setting does not set one (a cell of an earlier recipe), so that one line or bar never
    mixes two learning rates under one name."""
    from domainlm.pretrain.presets import recipe_of

    lr = (cell.get("recipe") or {}).get("lr")
    now = recipe_of(cell.get("preset") or "").get("lr")
    named = any(s.startswith("train.lr=") for s in cell.get("sets") or [])
    if lr is None or now is None or lr == now or named:
        return cell["setting"]
    return f"{cell['setting']} (lr {lr:g})"


def on_recipe(cell: dict) -> bool:
    """Whether ``cell`` trained at its preset's current recipe: a default cell measured before the recipe
    changed (its recorded lr another) is history, not the default. A cell stored without its recipe
    counts (stores before 2026-12-07 and other machines' did not record it)."""
    from domainlm.pretrain.presets import recipe_of

    rec = cell.get("recipe")
    return not rec or all(rec[k] == v for k, v in recipe_of(cell["preset"]).items() if k in rec)


def seed_means(cells: list[dict], corpus: str, state: str, out: dict) -> dict[float, float]:
    """The default's mean accuracy over the seeds of its ``state`` settings (``modernbert-mini STATE``,
    ``... STATE seedN``) at each budget in minutes; written into ``out`` as CORPUS_STATE_acc_Mm and
    CORPUS_STATE_seeds_Mm."""
    accs: dict[float, list[float]] = {}
    for c in cells:
        if c["corpus"] == corpus and re.fullmatch(rf"{DEFAULT} {state}( seed\d+)?", c["setting"]):
            accs.setdefault(c["minutes"], []).append(c["accuracy"])
    tag = state.replace(" ", "_")
    means = {m: sum(a) / len(a) for m, a in sorted(accs.items())}
    for m, mean in means.items():
        out[f"{corpus}_{tag}_acc_{m:g}m"] = round(mean, 4)
        out[f"{corpus}_{tag}_seeds_{m:g}m"] = len(accs[m])
    return means


def summary(cells: list[dict]) -> dict:
    """The RESULT ratios: the default at 3 minutes, minutes to the Trainer's 10-minute accuracy, CLM vs n-gram.
    The default's cells (and its warm seeds) count only on the preset's current recipe (on_recipe)."""
    out: dict = {}
    fixed = [c for c in cells if c.get("max_tokens")]
    # the targets are wall-clock budgets, the default's on its current recipe
    cells = [
        c
        for c in cells
        if not c.get("max_tokens")
        and (not re.fullmatch(rf"{DEFAULT}( warm( elsewhere)?)?( seed\d+)?", c["setting"]) or on_recipe(c))
    ]
    for c in fixed:  # each setting's accuracy at a token budget (compare them on the same tokens)
        tag = c["setting"].replace(" ", "_")
        if c["accuracy"] is not None:
            out[f"{c['corpus']}_{tag}_acc_{c['budget']}"] = round(c["accuracy"], 4)

    def get(corpus, name, budget):
        return next(
            (c for c in cells if (c["corpus"], c["setting"], c["budget"]) == (corpus, name, budget)), None
        )

    for corpus in sorted({c["corpus"] for c in cells}):
        # the default at 3 minutes (the target), else at the longest budget run (e.g. --quick)
        mine = [c for c in cells if c["corpus"] == corpus and c["setting"] == DEFAULT]
        d3 = get(corpus, DEFAULT, "3m") or max(mine, key=lambda c: c["minutes"], default=None)
        if d3:
            out[f"{corpus}_acc_{d3['budget']}"] = round(d3["accuracy"], 4)
            if d3["probe_top5"] is not None:
                out[f"{corpus}_probe_top5_{d3['budget']}"] = round(d3["probe_top5"], 4)
        # the Trainer's best 10 minutes on the default's model, whatever its recipe (lr, batch): the target
        # is the strongest baseline measured, not the one on the default's current recipe
        trainers = [
            c
            for c in cells
            if c["corpus"] == corpus and c["setting"].startswith(TRAINER) and c["budget"] == "10m"
        ]
        t10 = max(trainers, key=lambda c: c["accuracy"], default=None)
        if t10:
            out[f"{corpus}_trainer_acc_10m"] = round(t10["accuracy"], 4)
            out[f"{corpus}_trainer_setting"] = t10["setting"].replace(" ", "_")
            hits = sorted(
                c["minutes"]
                for c in cells
                if c["corpus"] == corpus and c["setting"] == DEFAULT and c["accuracy"] >= t10["accuracy"]
            )
            out[f"{corpus}_minutes_to_trainer_10m"] = hits[0] if hits else "none"
            # the default once the machine's compile cache holds the model (any run after its first
            # compiled one): the mean over the `warm` seeds at each budget
            means = seed_means(cells, corpus, "warm", out)
            hits = [m for m, mean in means.items() if mean >= t10["accuracy"]]
            if means:
                out[f"{corpus}_minutes_to_trainer_10m_warm"] = hits[0] if hits else "none"
        # ... and once it has compiled the same preset for another corpus (its other vocabulary)
        seed_means(cells, corpus, "warm elsewhere", out)
        longest = max((c["minutes"] for c in cells if c["corpus"] == corpus), default=0)
        for c in cells:
            if c["corpus"] == corpus and c["objective"] == "clm" and c["minutes"] == min(10, longest):
                tag = c["setting"].split()[0]
                out[f"{corpus}_{tag}_ppl_{c['budget']}"] = round(c["perplexity"], 3)
                out[f"{corpus}_ngram_ppl"] = round(c["ngram_perplexity"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20-second budgets, demo corpus, 3 settings")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-ttq"), help="scratch folder (cells resume)")
    ap.add_argument("--corpora", default=None, help="comma list of: demo, spdx")
    ap.add_argument("--settings", default=None, help=f"comma list of: {', '.join(SETTINGS)}")
    ap.add_argument(
        "--budgets",
        default=None,
        help="comma list of durations or token counts (default 1m,3m,10m; e.g. 1.4Mtok)",
    )
    ap.add_argument(
        "--report", action="store_true", help="table, plot and RESULT of the stored cells; trains nothing"
    )
    ap.add_argument("--cells", default=None, help=f"cell store (default {CELLS.relative_to(ROOT)}/MACHINE)")
    ap.add_argument(
        "--machine", default=None, help="--report: the cells of this machine tag (default: this one)"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker_trainer(json.loads(a.worker))
        return
    sys.path.insert(0, str(ROOT / "src"))
    plan = QUICK if a.quick else FULL
    work = Path(a.work) / ("quick" if a.quick else "full")
    machine = _cells.machine_tag(_cells.machine_facts())
    if a.machine and not a.report:
        raise SystemExit("--machine only names whose cells --report reads; a run measures this machine")
    cells_dir = Path(a.cells) if a.cells else work / "cells" if a.quick else CELLS / (a.machine or machine)
    corpora = a.corpora.split(",") if a.corpora else list(plan)
    budgets = (
        [check_budget(b) for b in a.budgets.split(",")] if a.budgets else (["20s"] if a.quick else BUDGETS)
    )
    for c in corpora:
        if c not in ("demo", "spdx"):
            raise SystemExit(f"unknown corpus '{c}'; use demo, spdx")
    for s in a.settings.split(",") if a.settings else []:
        if s not in SETTINGS:
            raise SystemExit(f"unknown setting '{s}'; use one of: {', '.join(SETTINGS)}")
    cells = []
    print(
        f"load average before: {os.getloadavg()[0]:.2f}; machine {machine}; cells in {_shown(cells_dir)}",
        flush=True,
    )
    for corpus in corpora if not a.report else []:
        data = setup_corpus(corpus, work)
        names = a.settings.split(",") if a.settings else plan.get(corpus, FULL[corpus])
        for name in names:
            extra = [] if (a.quick or a.budgets) else EXTRA_BUDGETS.get(name, [])
            for budget in sorted(budgets + extra, key=budget_order):
                c = run_cell(work, cells_dir, corpus, data, name, budget, 3000 if a.quick else 10000, machine)
                cells.append(c)
                acc = _pct(c["accuracy"]) if c["accuracy"] is not None else f"ppl {c['perplexity']:.2f}"
                print(f"  {corpus} | {name} | {budget}: {acc}, {c['tokens_per_s']:,.0f} tokens/s", flush=True)
    if a.report:  # every stored cell of these corpora (and settings, if named), in the plan's order
        stored = [json.loads(p.read_text()) for p in sorted(cells_dir.glob("*--*--*.json"))]
        wanted = a.settings.split(",") if a.settings else list(SETTINGS)
        cells = [c for c in stored if c["corpus"] in corpora and c["setting"] in wanted]
        cells.sort(
            key=lambda c: (corpora.index(c["corpus"]), wanted.index(c["setting"]), budget_order(c["budget"]))
        )
    if not cells:
        raise SystemExit(f"no cells stored in {_shown(cells_dir)} for {','.join(corpora)}")
    text = table(cells)
    print("\n" + text)
    work.mkdir(parents=True, exist_ok=True)
    (work / "time_to_quality.md").write_text(text + "\n")
    plot(cells, work / "time_to_quality.png")
    print(f"\nwrote {work / 'time_to_quality.md'} and {work / 'time_to_quality.png'}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    res = summary(cells)
    print("RESULT " + " ".join(f"{k}={v}" for k, v in res.items()))


if __name__ == "__main__":
    main()
