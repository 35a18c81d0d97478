"""tokenizer: every kind trains, loads with AutoTokenizer and round-trips; styles add their specials; report."""

from __future__ import annotations

import json

import pytest

from domainlm.tokens.tokenizer import (
    SPECIALS,
    generic_tokenizer_path,
    load_tokenizer,
    tokenizer_hash,
    train_tokenizer,
)

TEXT = "The President shall be elected by the members of an electoral college"


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_each_kind_trains_loads_and_round_trips(corpus_dir, tmp_path, kind):
    from transformers import AutoTokenizer

    res = train_tokenizer(corpus_dir, tmp_path / kind, kind=kind, vocab_size=300, style="bert")
    assert res.kind == kind and 50 < res.vocab_size <= 300
    tok = AutoTokenizer.from_pretrained(str(tmp_path / kind), local_files_only=True)
    ids = tok(TEXT)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True).strip() == TEXT
    assert tok.unk_token_id not in ids
    assert len(tokenizer_hash(tmp_path / kind)) == 16


@pytest.mark.parametrize("style", ["bert", "roberta", "gpt"])
def test_style_adds_its_special_tokens(corpus_dir, tmp_path, style):
    kind = "wordpiece" if style == "bert" else "bpe"
    train_tokenizer(corpus_dir, tmp_path / style, kind=kind, vocab_size=300, style=style)
    tok = load_tokenizer(tmp_path / style)
    tokens = tok.convert_ids_to_tokens(tok(TEXT)["input_ids"])
    if style == "bert":
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    elif style == "roberta":
        assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    else:
        assert SPECIALS["gpt"]["eos_token"] not in tokens  # GPT style: separators are added when packing
    assert tok.mask_token == SPECIALS[style].get("mask_token")


def test_report_compares_with_the_generic_tokenizer(corpus_dir, tmp_path):
    res = train_tokenizer(corpus_dir, tmp_path / "t", kind="wordpiece", vocab_size=300, report=True)
    saved = json.loads((tmp_path / "t" / "report.json").read_text())
    assert saved == json.loads(json.dumps(res.report))
    domain = saved["tokenizers"]["domain"]
    assert domain["fertility"] >= 1.0 and 0.0 <= domain["unknown_rate"] < 0.05
    assert saved["split"] == "validation" and saved["words"] > 0
    if generic_tokenizer_path() is not None:
        assert len(saved["tokenizers"]) == 2
        ex = saved["examples"][0]
        assert set(ex) >= {"word", "count", "domain"} and len(ex) == 4
        generic = [k for k in saved["tokenizers"] if k != "domain"][0]
        assert len(ex[generic]) >= len(ex["domain"])
