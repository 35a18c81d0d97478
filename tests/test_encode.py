"""encode: flat uint16 memmap with separators and document offsets, identical for any worker count, cached."""

from __future__ import annotations

import json

import numpy as np
import pytest

from domainlm.corpus.documents import read_documents
from domainlm.tokens import encode
from domainlm.tokens.tokenizer import load_tokenizer


@pytest.fixture()
def sep(bert_tokenizer) -> int:
    return load_tokenizer(bert_tokenizer).sep_token_id


def test_shard_matches_tokenizer_and_offsets(corpus_dir, bert_tokenizer, sep, tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "documents.jsonl").write_bytes((corpus_dir / "documents.jsonl").read_bytes())
    shard = encode.encode_split(corpus, bert_tokenizer, "train", sep, workers=1)
    tok = load_tokenizer(bert_tokenizer)
    texts = [d["text"] for d in read_documents(corpus, "train")]
    assert shard.tokens.dtype == np.uint16 and shard.n_docs == len(texts)
    assert shard.offsets[0] == 0 and shard.offsets[-1] == len(shard.tokens)
    for i in (0, len(texts) // 2, len(texts) - 1):
        piece = shard.tokens[shard.offsets[i] : shard.offsets[i + 1]].tolist()
        assert piece == tok(texts[i], add_special_tokens=False)["input_ids"] + [sep]
    assert int((shard.tokens == sep).sum()) == shard.n_docs


def test_parallel_workers_give_identical_tokens(corpus_dir, bert_tokenizer, sep, tmp_path, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    rows = [json.loads(line) for line in (corpus_dir / "documents.jsonl").open()] * 3
    (corpus / "documents.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    one = encode.encode_split(corpus, bert_tokenizer, "train", sep, workers=1)
    ref, ref_offsets = np.array(one.tokens), np.array(one.offsets)
    monkeypatch.setattr(encode, "MIN_BYTES_PER_WORKER", 1)  # force real worker processes on a tiny corpus
    import shutil

    shutil.rmtree(corpus / "cache")
    two = encode.encode_split(corpus, bert_tokenizer, "train", sep, workers=2)
    assert np.array_equal(np.array(two.tokens), ref) and np.array_equal(np.array(two.offsets), ref_offsets)


def test_cache_is_reused_and_keyed_by_tokenizer(corpus_dir, bert_tokenizer, sep, tmp_path, monkeypatch):
    from domainlm.tokens.tokenizer import train_tokenizer

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "documents.jsonl").write_bytes((corpus_dir / "documents.jsonl").read_bytes())
    first = encode.encode_split(corpus, bert_tokenizer, "validation", sep)
    mtime = first.path.stat().st_mtime_ns

    def fail(*a, **k):
        raise AssertionError("re-encoded although the cache was valid")

    monkeypatch.setattr(encode, "_encode", fail)
    again = encode.encode_split(corpus, bert_tokenizer, "validation", sep)
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime
    assert np.array_equal(np.array(again.tokens), np.array(first.tokens))
    other = tmp_path / "tok2"
    train_tokenizer(corpus, other, kind="wordpiece", vocab_size=200, style="bert")
    with pytest.raises(AssertionError, match="re-encoded"):
        encode.encode_split(corpus, other, "validation", sep)  # a different tokenizer: a new cache key
