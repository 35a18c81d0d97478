"""Same command, same input -> byte-identical artefacts, across separate processes (DESIGN decision 6).

The `tokenizers` trainers iterate hash maps seeded per process (huggingface/tokenizers#1794): before the
fix, three runs of `domainlm tokenizer` on the demo corpus gave three WordPiece and three Unigram files.
A second process has another hash seed, so each test compares a run here with a run in a child process
(with the trainers' thread pool on there, off here: conftest sets TOKENIZERS_PARALLELISM=false).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from domainlm.tokens.tokenizer import train_tokenizer

SRC = Path(__file__).resolve().parents[1] / "src"
KINDS = ["wordpiece", "bpe", "unigram"]


def _env(parallel: bool) -> dict[str, str]:
    path = f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return {**os.environ, "PYTHONPATH": path, "TOKENIZERS_PARALLELISM": str(parallel).lower()}


def _child(args: list[str], parallel: bool = True) -> None:
    res = subprocess.run(
        [sys.executable, *args], env=_env(parallel), capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_gives_the_same_tokenizer_json_in_another_process(corpus_dir, tmp_path, kind):
    here, there = tmp_path / "here", tmp_path / "there"
    train_tokenizer(corpus_dir, here, kind=kind, vocab_size=300)
    code = (
        "import sys\nfrom domainlm.tokens.tokenizer import train_tokenizer\n"
        "train_tokenizer(sys.argv[1], sys.argv[2], kind=sys.argv[3], vocab_size=300)\n"
    )
    _child(["-c", code, str(corpus_dir), str(there), kind])
    a, b = (here / "tokenizer.json").read_bytes(), (there / "tokenizer.json").read_bytes()
    assert a == b
    assert b'"[UNK]"' in a  # the file is a real tokenizer, not an empty one that trivially matches


def test_wordpiece_seeds_only_word_characters_and_keeps_only_real_special_tokens(corpus_dir, tmp_path):
    from transformers import AutoTokenizer

    train_tokenizer(corpus_dir, tmp_path / "t", kind="wordpiece", vocab_size=300)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "t"), local_files_only=True)
    vocab = tok.get_vocab()
    assert (
        "##e" in vocab and "##," not in vocab and "## " not in vocab
    )  # punctuation and space: never inside a word
    assert sorted(tok.all_special_tokens) == sorted({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
    assert sorted(tok.added_tokens_decoder) == [0, 1, 2, 3, 4]
    # the seeds are ordinary pieces: "##e" in the text is punctuation and a letter, not a matched token
    assert "##e" not in tok.tokenize("a##e")


@pytest.mark.slow  # four processes, two of which import torch: ~1 minute on a busy 2-core machine
def test_the_same_commands_give_byte_identical_weights_at_fixed_steps(corpus_dir, tmp_path):
    """tokenizer + pretrain twice, each in its own processes and on its own copy of the corpus."""
    files = {}
    for i, parallel in enumerate((True, False)):
        root = tmp_path / f"replica{i}"
        (root / "corpus").mkdir(parents=True)
        shutil.copy(corpus_dir / "documents.jsonl", root / "corpus" / "documents.jsonl")
        cli = ["-m", "domainlm.cli"]
        _child(
            [*cli, "tokenizer", str(root / "corpus"), "-o", str(root / "tok"), "--vocab-size", "300"],
            parallel,
        )
        pretrain = [*cli, "pretrain", str(root / "corpus"), "--tokenizer", str(root / "tok")]
        pretrain += ["--preset", "bert-tiny", "--objective", "mlm", "--max-steps", "3", "--budget", "30m"]
        pretrain += ["--seq-len", "32", "--batch-size", "4", "--runs-dir", str(root / "runs"), "--name", "r"]
        _child(pretrain, parallel)
        files[i] = {
            "tokenizer": (root / "tok" / "tokenizer.json").read_bytes(),
            "weights": (root / "runs" / "r" / "model" / "model.safetensors").read_bytes(),
        }
    assert files[0]["tokenizer"] == files[1]["tokenizer"]
    assert files[0]["weights"] == files[1]["weights"]
