"""The evidence lookup: nearest corpus size and budget on a log scale, the noise rule, the classical verdict."""

from __future__ import annotations

import json

import pytest

from domainlm import evidence as evmod
from domainlm.errors import UserError


def row(corpus, family, budget_s, kind="masked", f1=None, std=0.02, bpc=None, tasks=("encoder", "classify")):
    r = {"corpus": corpus, "family": family, "kind": kind, "preset": family, "objective": "mlm",
         "tasks": list(tasks), "budget_s": budget_s, "cpu_s": 2 * (budget_s or 10), "downstream": {}}  # fmt: skip
    if f1 is not None:
        method = "tfidf+svm" if kind == "classical" else "frozen-mean"
        r["downstream"][method] = {"mean": f1, "std": std, "folds": 5}
    if bpc is not None:
        r["bits_per_char"] = bpc
    return r


def synthetic(rows) -> dict:
    return {
        "format_version": 1,
        "study": "test",
        "corpora": {"small": {"characters": 100_000, "documents": 50}, "large": {"characters": 10_000_000, "documents": 5000}},
        "noise": {"bits_per_char": 0.01},
        "rows": rows,
    }  # fmt: skip


EV = synthetic(
    [
        row("small", "bert-mini", 120, f1=0.50),
        row("small", "bert-mini", 600, f1=0.60),
        row("small", "modernbert-mini", 600, f1=0.70),
        row("small", "tfidf+svm", None, kind="classical", f1=0.65, tasks=("classify",)),
        row("large", "bert-mini", 600, f1=0.80),
        row("large", "modernbert-mini", 600, f1=0.75),
        row("large", "tfidf+svm", None, kind="classical", f1=0.60, tasks=("classify",)),
    ]
)


def test_the_nearest_corpus_is_chosen_on_a_log_scale():
    assert evmod.nearest_corpus(EV, 200_000)[0] == "small"
    assert evmod.nearest_corpus(EV, 5_000_000)[0] == "large"
    # 1M characters is 10x from both: the tie goes to the smaller study corpus
    name, dist = evmod.nearest_corpus(EV, 1_000_000)
    assert name == "small" and dist == pytest.approx(2.302585, rel=1e-4)


def test_the_nearest_budget_is_chosen_on_a_log_scale_ties_to_the_smaller():
    assert evmod.nearest_budget(EV, "small", 400, "encoder")[0] == 600  # ln(400/120)=1.20 > ln(600/400)=0.41
    assert evmod.nearest_budget(EV, "small", 200, "encoder")[0] == 120
    geometric_mean = (120 * 600) ** 0.5
    assert evmod.nearest_budget(EV, "small", geometric_mean, "encoder")[0] == 120
    assert evmod.nearest_budget(EV, "small", 600, "generator") is None  # nothing measured for it


def test_lookup_ranks_families_and_names_the_classical_verdict():
    look = evmod.lookup(EV, 150_000, 600, "classify")
    assert [e.family for e in look.entries] == ["modernbert-mini", "tfidf+svm", "bert-mini"]
    # 0.70 vs 0.65, std 0.02 over 5 folds: 2 sqrt(0.0008/5) = 0.025 < 0.05: a real gap, neural wins
    assert look.best_neural.family == "modernbert-mini" and not look.classical_better
    close = synthetic(
        [row("small", "bert-mini", 600, f1=0.66), row("small", "tfidf+svm", None, "classical", 0.65)]
    )
    assert evmod.lookup(close, 150_000, 600, "classify").classical_better  # within noise: the cheaper wins
    on_large = evmod.lookup(EV, 9_000_000, 600, "classify")
    assert on_large.best_neural.family == "bert-mini" and not on_large.classical_better


def test_generator_lookup_uses_bits_per_char_lower_is_better():
    gen = ("generator", "classify")
    ev = synthetic(
        [
            row("small", "gpt-mini", 600, kind="generative", bpc=2.10, tasks=gen),
            row("small", "llama-mini", 600, kind="generative", bpc=2.00, tasks=gen),
            row("small", "ngram", None, kind="classical", bpc=1.80, tasks=("generator",)),
        ]
    )
    look = evmod.lookup(ev, 100_000, 600, "generator")
    assert [e.family for e in look.entries] == ["ngram", "llama-mini", "gpt-mini"]
    assert look.best_neural.family == "llama-mini" and look.classical_better


def test_the_noise_rule_for_single_runs_is_relative():
    a = evmod.Entry("a", "generative", 2.00, None, 1, {})
    assert evmod.within_noise(
        a, evmod.Entry("b", "generative", 2.015, None, 1, {}), {"bits_per_char": 0.01}, "bits_per_char"
    )
    assert not evmod.within_noise(
        a, evmod.Entry("b", "generative", 2.05, None, 1, {}), {"bits_per_char": 0.01}, "bits_per_char"
    )


def test_a_bad_evidence_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        evmod.load(str(tmp_path / "absent.json"))
    bad = tmp_path / "ev.json"
    bad.write_text(json.dumps({"format_version": 99, "corpora": {}, "rows": []}))
    with pytest.raises(UserError, match="format"):
        evmod.load(bad)
    bad.write_text("{")
    with pytest.raises(UserError, match="not JSON"):
        evmod.load(bad)


def test_the_other_corpora_verdicts_show_where_the_choice_depends_on_the_corpus():
    small = evmod.lookup(EV, 100_000, 600, "encoder")
    assert evmod.verdict(small) == "modernbert-mini"  # tf-idf 0.65 is 0.05 behind: outside the noise band
    [large] = evmod.elsewhere(EV, small, "encoder")
    assert large.corpus == "large" and large.budget_s == 600 and evmod.verdict(large) == "bert-mini"
    classify = evmod.lookup(EV, 100_000, 600, "classify")
    assert [evmod.verdict(o) for o in evmod.elsewhere(EV, classify, "classify")] == ["bert-mini"]


def test_the_evidence_sentence_names_a_shared_method_once_and_no_family_twice():
    from domainlm.recommend import evidence_sentence

    look = evmod.lookup(EV, 100_000, 600, "classify")
    said = evidence_sentence(look, 100_000, "test")
    assert "tfidf+svm 0.650 ± 0.020," in said or said.endswith("tfidf+svm 0.650 ± 0.020")
    # the classical method is its family's name: not repeated
    assert "(tfidf+svm)" not in said and "by tfidf+svm" not in said
    assert said.count("frozen-mean") == 1 and "(the neural families by frozen-mean)" in said
    # a family measured by another method keeps its own tag, and none is shared
    mixed = synthetic(EV["rows"] + [row("small", "gpt-mini", 600, f1=0.55)])
    mixed["rows"][-1]["downstream"] = {"finetune-full": {"mean": 0.55, "std": 0.02, "folds": 5}}
    said = evidence_sentence(evmod.lookup(mixed, 100_000, 600, "classify"), 100_000, "test")
    assert (
        "gpt-mini 0.550 ± 0.020 by finetune-full" in said
        and "modernbert-mini 0.700 ± 0.020 by frozen-mean" in said
    )
    assert "((" not in said and "))" not in said
    assert "the neural families by" not in said


def test_untrained_rows_start_an_encoders_curve_and_are_never_a_lookups_entry():
    ev = synthetic(
        [*EV["rows"], row("small", "bert-mini", 0, f1=0.55), row("small", "modernbert-mini", 0, f1=0.9)]
    )
    # the nearest budget to 1 second is the smallest trained one, not the untrained row
    assert evmod.nearest_budget(ev, "small", 1, "encoder")[0] == 120
    look = evmod.lookup(ev, 100_000, 600, "encoder")
    neural = [e for e in look.entries if not e.classical]
    assert [e.family for e in neural] == ["modernbert-mini", "bert-mini"]  # 0.70, 0.60: not the 0.90
    assert all(e.row["budget_s"] == 600 for e in neural)
    assert [(b, e.value) for b, e in evmod.curve(ev, "small", "bert-mini", "encoder")] == [
        (0.0, 0.55),
        (120.0, 0.50),
        (600.0, 0.60),
    ]
    # classify's value is a family's best method: an untrained row's frozen-mean is not on its curve
    assert [b for b, _ in evmod.curve(ev, "small", "bert-mini", "classify")] == [120.0, 600.0]
