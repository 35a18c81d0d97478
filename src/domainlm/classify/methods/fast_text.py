"""fastText supervised classification (Joulin et al. 2017, "Bag of Tricks for Efficient Text
Classification"): word 1-2-grams and character subwords, what a practitioner picks for speed.

Settings from fastText's text-classification tutorial ("Making the model better": ``-lr 1.0
-wordNgrams 2``) with 50 epochs instead of its 25: the tutorial's data has 12k examples, ours hundreds
(measured on one 80/20 split of the constitution task: 25 epochs 0.30 macro-F1, 50 epochs 0.41; SPDX
0.757 / 0.756; lr 0.5, which an earlier version used, 0.17 on the constitution). One thread so the same
input gives the same model; a smaller hash table than the 2M-bucket default keeps the saved model small.
Saved in fastText's own ``.bin`` format (read by ``fasttext.load_model``), not pickle.

Training runs in a fresh Python process. fastText 0.9.3 allocates its input matrix without zeroing it
(``intgemm::AlignedVector``) and, with fewer than 10 threads, initialises only its first tenth
(``DenseMatrix::uniform`` fills one block per thread): the other rows, most of the word-n-gram buckets,
start as whatever the allocator hands back. In a process that has freed large buffers (a character
TF-IDF before it, measured: NaN in 3 of 4 processes) that is old data, sometimes NaN, so the same input
gave different models or "Encountered NaN". A fresh process with a fixed mmap threshold gets the matrix
from new, zeroed pages: the same input and seed give the same model every time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from domainlm.classify.methods import store
from domainlm.errors import UserError

SETTINGS = {"epoch": 50, "lr": 1.0, "wordNgrams": 2, "dim": 50, "bucket": 100_000, "minCount": 1, "thread": 1}


def _import():
    try:
        import fasttext
    except ImportError:
        raise UserError(
            "method 'fasttext' needs the fasttext package", "pip install 'domainlm[classify]'"
        ) from None
    return fasttext


# the child process: train, save, exit; its only input is the JSON job on argv
_TRAIN = """
import json, sys
import fasttext
job = json.loads(sys.argv[1])
fasttext.train_supervised(input=job["input"], seed=job["seed"], verbose=0, **job["settings"]).save_model(job["output"])
"""


def _train_fresh(train_file: Path, seed: int, dest: Path) -> None:
    job = {"input": str(train_file), "seed": seed, "settings": SETTINGS, "output": str(dest)}
    # glibc: a fixed threshold keeps large blocks on fresh mmap'd (zeroed) pages, never reused heap
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run(
        [sys.executable, "-c", _TRAIN, json.dumps(job)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0 or not dest.is_file():
        why = (done.stderr.strip().splitlines() or ["no error message"])[-1]
        raise UserError(f"fastText training failed: {why}", "Drop 'fasttext' from --methods")


def line(text: str) -> str:
    return " ".join(text.split())  # fastText reads one example per line


@dataclass
class FittedFastText:
    model: object
    labels: list[str]

    def predict_proba(self, texts: list[str]):
        import numpy as np

        out = np.zeros((len(texts), len(self.labels)))
        names, probs = self.model.predict([line(t) for t in texts], k=-1)
        for r, (ls, ps) in enumerate(zip(names, probs, strict=True)):
            for lab, p in zip(ls, ps, strict=True):
                out[r, int(lab.removeprefix("__label__"))] = p
        return out

    def save(self, dest: Path) -> None:
        store.write_meta(dest, "fasttext", self.labels, False, settings=SETTINGS)
        self.model.save_model(str(dest / "model.bin"))

    def size(self) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            self.save(Path(tmp))
            return store.folder_bytes(Path(tmp))


class FastText:
    multi_label = False
    name = "fasttext"

    def __init__(self, ctx):
        self.ctx = ctx
        _import()

    def fit(self, texts, y, seed: int, log_dir=None) -> FittedFastText:
        ft = _import()
        with tempfile.TemporaryDirectory() as tmp:
            f = Path(tmp) / "train.txt"
            f.write_text("".join(f"__label__{int(c)} {line(t)}\n" for t, c in zip(texts, y, strict=True)))
            _train_fresh(f, seed, Path(tmp) / "model.bin")  # see the module docstring
            model = ft.load_model(str(Path(tmp) / "model.bin"))
        return FittedFastText(model, self.ctx.labels)


def load(path: Path, meta: dict) -> FittedFastText:
    return FittedFastText(_import().load_model(str(path / "model.bin")), meta["labels"])
