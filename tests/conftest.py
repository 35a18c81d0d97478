"""Shared test fixtures: tiny corpora and tokenizers made in the test, offline, CPU only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _own_compile_cache(tmp_path_factory):
    """torch's compile cache, and domainlm's markers in it, in a folder of this test session: a marker
    left by another run would make speed.compile=auto compile a test's short budget (compile_cache_warm),
    and a test's compiled run would warm the user's own cache."""
    old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("inductor"))
    yield
    if old is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = old


SHARED = Path(__file__).resolve().parents[2] / "shared"
SPDX = SHARED / "data" / "spdx-licenses.jsonl"

_LEGAL = [
    "The {a} shall be elected by the members of an electoral college consisting of the elected members of {b}.",
    "No person shall be deprived of his life or personal liberty except according to procedure established by {b}.",
    "Every citizen shall have the right to freedom of speech and expression, subject to reasonable restrictions imposed by {a}.",
    "The {a} may, by order, declare that the provisions of this article shall not apply to {b}.",
    "Parliament may by law regulate the {a} and the {b} in accordance with the provisions of this Constitution.",
    "Any dispute arising under this agreement shall be referred to the {a} whose decision shall be final for {b}.",
]
_NOUNS = [
    "President",
    "Governor",
    "Parliament",
    "State",
    "Legislature",
    "Court",
    "Commission",
    "Union",
    "Council",
    "Assembly",
    "tribunal",
    "authority",
]


def make_docs(n: int = 60, seed: int = 0) -> list[str]:
    """Deterministic synthetic legal-ish documents (several sentences each), all distinct."""
    import random

    rng = random.Random(seed)
    docs = []
    for i in range(n):
        sents = [
            rng.choice(_LEGAL).format(a=rng.choice(_NOUNS), b=rng.choice(_NOUNS))
            for _ in range(rng.randint(4, 9))
        ]
        docs.append(f"Article {i + 1}. " + " ".join(sents))
    return docs


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("raw")
    with (d / "docs.jsonl").open("w") as f:
        for i, text in enumerate(make_docs()):
            f.write(json.dumps({"text": text, "n": i}) + "\n")
    return d


@pytest.fixture(scope="session")
def corpus_dir(raw_dir, tmp_path_factory) -> Path:
    from domainlm.corpus.prepare import prepare

    out = tmp_path_factory.mktemp("corpus")
    prepare([raw_dir], out, overrides=["dedup_near=false"])
    return out


@pytest.fixture(scope="session")
def bert_tokenizer(corpus_dir, tmp_path_factory) -> Path:
    from domainlm.tokens.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tok") / "wordpiece"
    train_tokenizer(corpus_dir, out, kind="wordpiece", vocab_size=300, style="bert")
    return out


class CaptureReporter:
    """A domainlm.reporting.Reporter that keeps the messages the loop prints (for asserting what the user is told)."""

    def __init__(self):
        self.messages: list[str] = []

    def start(self, info): ...
    def step(self, row): ...
    def message(self, text):
        self.messages.append(text)

    def finish(self): ...


# the tiny run most training tests start from: a 2-layer, 128-wide BERT, 32-token blocks (seconds on a CPU)
TINY_RUN = dict(
    preset="bert-tiny",
    objective="mlm",
    budget="5m",
    max_steps=10,
    name="tiny",
    seq_len=32,
    batch_size=8,
    lr=3e-3,
)


def tiny_pretrain(corpus, runs_dir, **overrides):
    """`domainlm.pretrain.loop.pretrain` of TINY_RUN on ``corpus`` into ``runs_dir``; any of
    pretrain's arguments in ``overrides`` replaces the default (``overrides=[...]`` are the --set keys)."""
    from domainlm.pretrain.loop import pretrain

    return pretrain(corpus=corpus, runs_dir=runs_dir, **(TINY_RUN | overrides))


def metric_rows(run_dir: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def kill_after_checkpoint(kw: dict, name: str, step: int) -> None:
    """Run ``pretrain(**kw, name=name)`` in a child process and SIGKILL it once a checkpoint of ``step``
    or later is complete (the resume tests' kill -9)."""
    import signal
    import subprocess
    import sys
    import time

    from domainlm.pretrain import checkpoint

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = f"from domainlm.pretrain.loop import pretrain\npretrain(**{ {**kw, 'name': name}!r})\n"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    ckpts = Path(kw["runs_dir"]) / name / "checkpoints"
    t0 = time.time()
    while not any(int(p.name.split("-")[1].split(".")[0]) >= step for p in checkpoint.complete(ckpts)):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() - t0 < 240, "no checkpoint in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
