"""recommend: the decision rules on given numbers, and the whole measurement on a tiny corpus."""

from __future__ import annotations

import dataclasses

import pytest

from domainlm import config as cfgmod
from domainlm.config import RunConfig
from domainlm.errors import UserError
from domainlm.recommend import (
    FERTILITY_GAIN,
    TOKENS_PER_PARAM,
    Candidate,
    best_untrained,
    decide,
    fill,
    recommend,
    train_seconds,
    untrained_reason,
)
from tests.conftest import CaptureReporter
from tests.tiny_models import make_mlm

WORDS = 10_000_000  # a 10M-word corpus


def _cands(tps: dict[str, float], fert: float = 1.3, ckpt_fert: float | None = None) -> list[Candidate]:
    sizes = {"bert-mini": 5_000_000, "bert-small": 30_000_000, "bert-medium": 40_000_000}
    out = [
        Candidate(p, "scratch", "mlm", n, tps[p], "domain", fert, preset=p)
        for p, n in sizes.items()
        if p in tps
    ]
    if ckpt_fert is not None:
        out.append(
            Candidate(
                "continue ckpt",
                "continue",
                "mlm",
                22_000_000,
                tps["ckpt"],
                "checkpoint",
                ckpt_fert,
                init_from="ckpt",
            )
        )
    return out


def _decide(cands: list[Candidate], budget_s: float) -> tuple[Candidate, list[str]]:
    t = train_seconds(budget_s)
    return decide([fill(c, WORDS, t) for c in cands])


def test_the_largest_preset_reaching_20_tokens_per_parameter_is_chosen():
    # 20 h at these speeds: mini 5e3*~64.8e3 s = 324M tokens (65/param), small 324M/30M = 10.8/param
    choice, reasons = _decide(_cands({"bert-mini": 5000, "bert-small": 5000, "bert-medium": 4000}), 20 * 3600)
    assert choice.preset == "bert-mini"
    assert choice.tokens_per_param >= TOKENS_PER_PARAM
    assert "bert-small" in reasons[1] and "only" in reasons[1]  # why not the next size up
    # a longer budget moves the choice up
    choice, _ = _decide(_cands({"bert-mini": 5000, "bert-small": 5000, "bert-medium": 4000}), 200 * 3600)
    assert choice.preset == "bert-medium"


def test_a_short_budget_flags_the_smallest_preset_as_under_trained():
    choice, reasons = _decide(_cands({"bert-mini": 5000, "bert-small": 1000}), 600)
    assert choice.preset == "bert-mini" and choice.tokens_per_param < TOKENS_PER_PARAM
    assert "under-trained" in reasons[0]


def test_a_general_checkpoint_wins_when_no_scratch_model_is_trained_enough():
    choice, reasons = _decide(_cands({"bert-mini": 5000, "ckpt": 2000}, ckpt_fert=1.3), 600)
    assert choice.kind == "continue" and choice.init_from == "ckpt"
    assert any("Gururangan" in r for r in reasons)


def test_with_enough_budget_the_domain_vocabulary_decides_between_scratch_and_continued():
    budget = 50 * 3600  # bert-mini: 5000 tok/s x ~162e3 s = 810M tokens = 162/param: trainable
    close = _decide(_cands({"bert-mini": 5000, "ckpt": 2000}, fert=1.3, ckpt_fert=1.3 * 1.1), budget)[0]
    assert close.kind == "continue"
    far_fert = 1.3 * (FERTILITY_GAIN + 0.1)
    far, reasons = _decide(_cands({"bert-mini": 5000, "ckpt": 2000}, fert=1.3, ckpt_fert=far_fert), budget)
    assert far.kind == "scratch" and any("domain vocabulary" in r for r in reasons)


def test_repeating_the_corpus_too_often_is_reported():
    c = _cands({"bert-mini": 50_000})
    t = train_seconds(100 * 3600)
    small_corpus = [fill(dataclasses.replace(x), 100_000, t) for x in c]
    choice, reasons = decide(small_corpus)
    assert choice.epochs > 16 and any("Muennighoff" in r for r in reasons)


def test_recommend_measures_and_writes_a_config_pretrain_accepts(corpus_dir, bert_tokenizer, tmp_path):
    ckpt = make_mlm(bert_tokenizer, tmp_path / "ckpt")
    rep = CaptureReporter()
    rec = recommend(
        corpus_dir,
        budget="2m",
        tokenizer=bert_tokenizer,
        init_from=ckpt,
        candidates=["bert-tiny"],
        probe_steps=1,
        seq_len=32,
        batch_size=4,
        output=tmp_path / "run.yaml",
        reporter=rep,
    )
    names = [c.name for c in rec.candidates]
    assert names == ["bert-tiny", "continue ckpt"]
    for c in rec.candidates:
        assert c.tokens_per_s > 0 and c.parameters > 0 and c.fertility > 0
        assert c.budget_tokens == int(c.tokens_per_s * rec.train_s)
    assert any("measuring bert-tiny" in m for m in rep.messages)
    cfg = cfgmod.load(RunConfig, rec.config_path)
    assert cfg.corpus == str(corpus_dir) and cfg.train.budget == "2m"
    if rec.choice.kind == "continue":
        assert cfg.model.init_from == str(ckpt)
    else:
        assert cfg.model.preset == "bert-tiny" and cfg.tokenizer == str(bert_tokenizer)
    text = rec.config_path.read_text()
    assert text.startswith("# written by `domainlm recommend`")
    assert rec.reasons[0] in text


def test_recommend_trains_a_sample_tokenizer_when_none_is_given(corpus_dir, tmp_path):
    rec = recommend(
        corpus_dir,
        budget="1m",
        general=False,
        candidates=["bert-tiny"],
        probe_steps=1,
        seq_len=32,
        batch_size=2,
    )
    assert [c.kind for c in rec.candidates] == ["scratch"]
    assert rec.candidates[0].fertility > 0 and rec.config_path is None


def test_bad_inputs_are_named(tmp_path, corpus_dir):
    with pytest.raises(UserError, match="not a corpus folder"):
        recommend(tmp_path)
    with pytest.raises(UserError, match="unknown task"):
        recommend(corpus_dir, task="summarise")
    from domainlm.tokens.tokenizer import train_tokenizer

    gpt_tok = train_tokenizer(
        corpus_dir, tmp_path / "gpt-tok", kind="bpe", vocab_size=300, style="gpt"
    ).output
    with pytest.raises(UserError, match="no mask token"):
        recommend(corpus_dir, tokenizer=gpt_tok, general=False, candidates=["bert-tiny"], probe_steps=1)
    with pytest.raises(UserError, match="no config.json"):
        recommend(
            corpus_dir, init_from=tmp_path, candidates=["bert-tiny"], probe_steps=1, seq_len=32, batch_size=2
        )


# ----------------------------------------------------------------------------------------------------
# with evidence: a synthetic study file written in the test (no measured numbers ship with the tests)


def _evidence(tmp_path, corpus_dir, frozen: dict[str, float], tfidf: float | None, budget_s=600.0):
    import json

    from domainlm.corpus.prepare import read_stats

    chars = read_stats(corpus_dir)["characters"]["train"]
    rows = [
        {"corpus": "near", "family": p, "kind": "masked", "preset": p, "objective": "mlm", "init_from": None,
         "tasks": ["encoder", "classify"], "budget_s": budget_s, "cpu_s": 5 * budget_s, "pretrain_cpu_s": 1.5 * budget_s, "parameters": 1_000_000,
         "downstream": {"frozen-mean": {"mean": f1, "std": 0.02, "folds": 5}}}
        for p, f1 in frozen.items()
    ]  # fmt: skip
    if tfidf is not None:
        rows.append({"corpus": "near", "family": "tfidf+svm", "kind": "classical", "tasks": ["classify"],
                     "budget_s": None, "downstream": {"tfidf+svm": {"mean": tfidf, "std": 0.02, "folds": 5}}})  # fmt: skip
    ev = {"format_version": 1, "study": "synthetic test study", "written": "test",
          "corpora": {"near": {"characters": chars, "documents": 60}, "far": {"characters": chars * 1000, "documents": 9}},
          "rows": rows}  # fmt: skip
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(ev))
    return path


def _rec(corpus_dir, tok, evidence, tmp_path, **kw):
    return recommend(corpus_dir, budget="10m", tokenizer=tok, general=False, evidence=evidence, probe_steps=1,
                     seq_len=32, batch_size=2, output=tmp_path / "run.yaml", **kw)  # fmt: skip


def test_recommend_chooses_the_best_measured_family_and_prints_the_evidence(
    corpus_dir, bert_tokenizer, tmp_path
):
    ev = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.80, "bert-mini": 0.60}, tfidf=0.55)
    rec = _rec(corpus_dir, bert_tokenizer, ev, tmp_path)
    assert rec.basis == "evidence" and rec.choice.preset == "bert-tiny" and rec.classical is None
    assert {c.preset for c in rec.candidates} == {"bert-tiny", "bert-mini"}  # both measured here too
    first = rec.reasons[0]
    assert "corpus ('near'" in first and "at 10 min" in first
    assert "bert-tiny 0.800 ± 0.020" in first and "bert-mini 0.600" in first and "tfidf+svm 0.550" in first
    assert cfgmod.load(RunConfig, rec.config_path).model.preset == "bert-tiny"  # the run config trains it
    assert not any(r.startswith("rule of thumb") and "Hoffmann" in r for r in rec.reasons)


def test_recommend_says_when_another_study_corpus_picks_another_family(corpus_dir, bert_tokenizer, tmp_path):
    import json

    path = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.80, "bert-mini": 0.60}, tfidf=0.55)
    ev = json.loads(path.read_text())
    rec = _rec(corpus_dir, bert_tokenizer, path, tmp_path)
    assert not any("depends on the corpus" in r for r in rec.reasons)  # "far" has no rows yet
    ev["rows"] += [r | {"corpus": "far", "downstream": {"frozen-mean": {"mean": 1.5 - f, "std": 0.02, "folds": 5}}}
                   for r, f in zip(ev["rows"][:2], (0.8, 0.6), strict=True)]  # fmt: skip
    path.write_text(json.dumps(ev))
    rec = _rec(corpus_dir, bert_tokenizer, path, tmp_path)
    assert rec.choice.preset == "bert-tiny"  # the nearest corpus still decides
    [why] = [r for r in rec.reasons if "depends on the corpus" in r]
    assert "on 'far'" in why and "it picks bert-mini 0.900" in why and "gives bert-tiny" in why


def test_recommend_says_classical_when_tfidf_is_within_noise(corpus_dir, bert_tokenizer, tmp_path):
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "a", "label": "x"}\n')
    ev = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.66}, tfidf=0.65)
    rec = _rec(corpus_dir, bert_tokenizer, ev, tmp_path, task="classify", labelled=labelled)
    assert rec.classical == "tfidf+svm"
    text = " ".join(rec.reasons)
    assert "classical: tfidf+svm 0.650" in text and "within noise" in text
    assert "--methods auto" in text and str(labelled) in text
    assert cfgmod.load(RunConfig, rec.config_path).model.preset == "bert-tiny"  # the best neural, if wanted
    # tfidf ahead by more than noise: "is ahead of"
    ev = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.50}, tfidf=0.70)
    rec = _rec(corpus_dir, bert_tokenizer, ev, tmp_path, task="classify", labelled=labelled)
    assert rec.classical == "tfidf+svm" and "is ahead of" in " ".join(rec.reasons)
    assert "For search or embeddings" not in " ".join(rec.reasons)  # classify: the verdict is the task's
    # --task encoder (classification or search): the verdict is said to be classification's
    rec = _rec(corpus_dir, bert_tokenizer, ev, tmp_path, task="encoder")
    text = " ".join(rec.reasons)
    assert (
        rec.classical == "tfidf+svm"
        and "for classification, a classical classifier is the better buy" in text
    )
    assert "For search or embeddings the study has no classical measurement" in text


def test_without_evidence_every_reason_is_marked_a_rule_of_thumb(corpus_dir, bert_tokenizer, tmp_path):
    rec = _rec(corpus_dir, bert_tokenizer, "none", tmp_path, candidates=["bert-tiny"])
    assert rec.basis == "rules of thumb" and rec.lookup is None
    assert all(r.startswith("rule of thumb (no measurement for this case)") for r in rec.reasons)
    assert "no evidence file" in rec.reasons[0]
    assert any("Hoffmann et al. 2022" in r for r in rec.reasons)  # the source is cited
    # evidence without a measurement for the task: the rules again, saying why
    ev = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.8}, tfidf=None)
    rec = _rec(corpus_dir, bert_tokenizer, ev, tmp_path, candidates=["bert-tiny"], task="generator")
    assert rec.basis == "rules of thumb" and "no measurement for task generator" in rec.reasons[0]


def test_classify_needs_its_labelled_file(corpus_dir, tmp_path):
    with pytest.raises(UserError, match="needs the labelled file"):
        recommend(corpus_dir, task="classify")
    with pytest.raises(UserError, match="is not a file"):
        recommend(corpus_dir, task="classify", labelled=tmp_path / "nope.csv")
    with pytest.raises(UserError, match="is for --task classify"):
        recommend(corpus_dir, labelled=tmp_path / "nope.csv")


def test_cli_prints_the_evidence_table_and_the_classical_verdict(corpus_dir, bert_tokenizer, tmp_path):
    from click.testing import CliRunner

    from domainlm.cli import cli

    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "a", "label": "x"}\n')
    ev = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.66}, tfidf=0.65)
    args = ["recommend", str(corpus_dir), "--budget", "10m", "--task", "classify", "--labelled", str(labelled),
            "--tokenizer", str(bert_tokenizer), "--no-general", "--evidence", str(ev), "--probe-steps", "1",
            "--seq-len", "32", "--batch-size", "2", "-o", str(tmp_path / "run.yaml")]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "measured on the study corpus 'near' at 10 min" in res.output
    assert "decided by: evidence; the better buy: tfidf+svm (classical)" in res.output
    # the CPU a model cost to make (its pretraining's 900 s), not all the study spent on its row (3,000 s)
    row = next(line for line in res.output.splitlines() if "bert-tiny" in line and "0.660" in line)
    assert "train CPU min" in res.output and "15.0" in row and "50.0" not in row


@pytest.mark.parametrize("explicit", [frozenset(), frozenset({"batch_size"})])
def test_the_written_config_trains_the_chosen_presets_measured_recipe(tmp_path, explicit):
    """recommend's timing batch (32 by default) must not replace a preset's measured batch (8 for
    modernbert-mini, RESULTS.md time_to_quality); a batch size the user gave recommend is kept."""
    from domainlm.pretrain import presets
    from domainlm.recommend import Recommendation, write_config

    c = Candidate(
        "modernbert-mini", "scratch", "mlm", 3_000_000, 5000.0, "domain", 1.2, preset="modernbert-mini"
    )
    rec = Recommendation(c, [c], ["because"], {}, {}, 600.0, 500.0)
    path = write_config(rec, tmp_path, None, "10m", 128, 32, "r", tmp_path / "run.yaml", explicit)
    train = presets.with_recipe(cfgmod.load(RunConfig, path)).train
    recipe = presets.recipe_of("modernbert-mini")
    assert train.batch_size == (32 if explicit else recipe["batch_size"]) and recipe["batch_size"] != 32
    assert train.lr == recipe["lr"] and train.mlm_probability == recipe["mlm_probability"]


@pytest.mark.parametrize("explicit", [frozenset(), frozenset({"batch_size"})])
def test_the_written_config_continues_a_checkpoint_with_the_continue_recipe(tmp_path, explicit):
    """Continued pretraining gets its measured recipe (lr 1e-4, batch 8: RESULTS.md model_selection
    --screen), not the from-scratch default lr or recommend's timing batch; a batch the user gave wins."""
    from domainlm.recommend import CONTINUE_RECIPE, Recommendation, write_config

    ckpt = tmp_path / "general"
    c = Candidate(
        "continue general", "continue", "mlm", 22_000_000, 1000.0, "checkpoint", 1.2, init_from=str(ckpt)
    )
    rec = Recommendation(c, [c], ["because"], {}, {}, 600.0, 500.0)
    path = write_config(rec, tmp_path, None, "10m", 128, 32, "r", tmp_path / "run.yaml", explicit)
    cfg = cfgmod.load(RunConfig, path)
    assert cfg.model.init_from == str(ckpt) and cfg.train.lr == CONTINUE_RECIPE["lr"] < RunConfig().train.lr
    assert cfg.train.batch_size == (32 if explicit else CONTINUE_RECIPE["batch_size"])


@pytest.mark.parametrize("evidence", [True, False])
def test_the_alternative_mark_is_the_rules_of_thumb_s_only(corpus_dir, bert_tokenizer, tmp_path, evidence):
    """ELECTRA is marked "alt." by the rules of thumb (Clark et al. 2020, not measured by them); where the
    evidence decides, it has measured ELECTRA (the study: last on both corpora) and the mark would
    contradict its table."""
    from click.testing import CliRunner

    from domainlm.cli import cli

    ev = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.66, "electra-small": 0.10}, tfidf=None)
    args = ["recommend", str(corpus_dir), "--budget", "10m", "--tokenizer", str(bert_tokenizer), "--no-general",
            "--candidates", "bert-tiny,electra-small", "--evidence", str(ev) if evidence else "none",
            "--probe-steps", "1", "--seq-len", "32", "--batch-size", "2", "-o", str(tmp_path / "run.yaml")]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert ("decided by: evidence" in res.output) == evidence
    row = next(line for line in res.output.splitlines() if "electra-small" in line and "│" in line)
    assert ("alt." in row) != evidence, res.output


def _with_curve(path, points: dict[float, float]):
    """The evidence at ``path`` with bert-tiny's row replaced by one per budget in ``points`` (0: untrained)."""
    import json

    ev = json.loads(path.read_text())
    tiny = next(r for r in ev["rows"] if r["family"] == "bert-tiny")
    ev["rows"] = [r for r in ev["rows"] if r["family"] != "bert-tiny"]
    for b, f1 in points.items():
        ev["rows"].append(
            tiny | {"budget_s": b, "downstream": {"frozen-mean": {"mean": f1, "std": 0.02, "folds": 5}}}
        )
    path.write_text(json.dumps(ev))
    return path


def test_a_measured_curve_replaces_the_epochs_rule_and_says_what_pretraining_beat(
    corpus_dir, bert_tokenizer, tmp_path, monkeypatch
):
    import domainlm.recommend as recmod

    # the epochs rule, whatever the probe measured here (it speaks past 16 epochs): a marker
    monkeypatch.setattr(recmod, "_epochs_reason", lambda choice: ["EPOCHS RULE"])
    ev = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.80, "bert-mini": 0.60}, tfidf=None)
    rec = _rec(corpus_dir, bert_tokenizer, ev, tmp_path, task="encoder")
    assert "rule of thumb (no measurement for this case): EPOCHS RULE" in rec.reasons  # one budget: no curve
    assert not any("measured curve" in r for r in rec.reasons)
    # a curve (two budgets and the untrained model): measured, no rule; the floor beaten beyond noise
    _with_curve(ev, {0.0: 0.50, 120.0: 0.70, 600.0: 0.80})
    rec = _rec(corpus_dir, bert_tokenizer, ev, tmp_path, task="encoder")
    assert rec.choice.preset == "bert-tiny" and not any("EPOCHS RULE" in r for r in rec.reasons)
    [curve] = [r for r in rec.reasons if r.startswith("measured curve")]
    assert "bert-tiny on 'near'" in curve and "untrained 0.500 ± 0.020, 2 min 0.700" in curve
    assert "still improving from 2 min to 10 min" in curve
    assert any("lifted its frozen embeddings above bert-tiny untrained (0.800" in r for r in rec.reasons)
    # the untrained model within noise of the pretrained one, and a flat curve: said plainly
    _with_curve(ev, {0.0: 0.79, 120.0: 0.80, 600.0: 0.80})
    text = " ".join(_rec(corpus_dir, bert_tokenizer, ev, tmp_path, task="encoder").reasons)
    assert "from 2 min to 10 min within noise" in text
    assert "pretraining bert-tiny for 10 min measured within noise of bert-tiny untrained" in text
    assert "Wieting and Kiela 2019" in text


def test_a_model_scored_without_pretraining_that_beats_every_pretrained_one_is_named(
    corpus_dir, bert_tokenizer, tmp_path
):
    import json

    path = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.70, "bert-mini": 0.60}, tfidf=None)
    ev = json.loads(path.read_text())
    base = {"corpus": "near", "kind": "masked", "tasks": ["encoder", "classify"], "budget_s": 0.0}
    untrained = base | {"family": "bert-mini", "preset": "bert-mini", "objective": "mlm"}
    ev["rows"].append(untrained | {"downstream": {"frozen-mean": {"mean": 0.65, "std": 0.02, "folds": 5}}})
    path.write_text(json.dumps(ev))
    rec = _rec(corpus_dir, bert_tokenizer, path, tmp_path, task="encoder")
    assert rec.choice.preset == "bert-tiny" and not any(
        "no pretraining" in r for r in rec.reasons
    )  # 0.65 < 0.70
    assert rec.untrained is None
    ev["rows"][-1]["downstream"]["frozen-mean"]["mean"] = 0.72
    path.write_text(json.dumps(ev))
    rec = _rec(corpus_dir, bert_tokenizer, path, tmp_path, task="encoder")
    [why] = [r for r in rec.reasons if r.startswith("no pretraining")]
    assert "bert-mini untrained, its random weights (0.720 ± 0.020), is ahead of, though within noise" in why
    assert "within noise of, the best pretrained family (bert-tiny 0.700" in why
    assert rec.choice.preset == "bert-tiny"  # the run config still trains the best pretrained family
    # the general checkpoint as installed, beyond noise: named, with the command that uses it as it is
    general = base | {
        "family": "minilm-continued",
        "preset": None,
        "objective": "mlm",
        "init_from": "general",
    }
    ev["rows"].append(general | {"downstream": {"frozen-mean": {"mean": 0.90, "std": 0.02, "folds": 5}}})
    path.write_text(json.dumps(ev))
    rec = _rec(corpus_dir, bert_tokenizer, path, tmp_path, task="encoder")
    [why] = [r for r in rec.reasons if r.startswith("no pretraining")]
    assert (
        "the general MiniLM as installed, not continued (0.900 ± 0.020), is ahead of the best" in why
        and "`domainlm finetune general LABELLED" in why
        and "`domainlm export general --format onnx-int8 -o DIR` ships it for search" in why
    )
    assert rec.untrained.family == "minilm-continued" and rec.untrained.value == 0.90
    # only an encoder is judged by frozen embeddings: for another task nothing is said
    assert untrained_reason(rec.lookup, best_untrained(ev, rec.lookup)) is not None
    classify = dataclasses.replace(rec.lookup, task="classify")
    assert best_untrained(ev, classify) is None and untrained_reason(classify, None) is None


def test_continued_pretrainings_curve_starts_from_the_checkpoint_as_installed():
    """The continue candidate's curve: its budget-0 row is the general MiniLM as installed, and the floor
    line compares continued pretraining with it (no random-init citation)."""
    from domainlm import evidence as evmod
    from domainlm.recommend import curve_reasons

    def minilm(b, f1):
        return {"corpus": "c", "family": "minilm-continued", "kind": "masked", "preset": None, "objective": "mlm",
                "init_from": "general", "tasks": ["encoder", "classify"], "budget_s": b,
                "downstream": {"frozen-mean": {"mean": f1, "std": 0.02, "folds": 5}}}  # fmt: skip

    ev = {
        "corpora": {"c": {"characters": 1000}},
        "rows": [minilm(0, 0.70), minilm(120, 0.60), minilm(360, 0.62)],
    }
    look = evmod.lookup(ev, 1000, 360, "encoder")
    cont = Candidate("continue gt", "continue", "mlm", 1, 1.0, "checkpoint", 1.0, init_from="general")
    curve, floor = curve_reasons(ev, look, cont)
    assert "minilm-continued on 'c' (frozen macro-F1): as installed 0.700 ± 0.020, 2 min 0.600" in curve
    assert "from 2 min to 6 min within noise" in curve
    assert (
        "continued pretraining of the general MiniLM for 6 min measured no better than the general" in floor
    )
    assert "served as well" in floor and "Wieting" not in floor
    # a scratch candidate the study has no rows of: no curve (the rule of thumb speaks instead)
    assert (
        curve_reasons(
            ev, look, Candidate("bert-mini", "scratch", "mlm", 1, 1.0, "domain", 1.0, preset="bert-mini")
        )
        == []
    )


def test_cli_names_the_model_without_pretraining_in_the_verdict_and_the_table(
    corpus_dir, bert_tokenizer, tmp_path
):
    import json

    from click.testing import CliRunner

    from domainlm.cli import cli

    path = _evidence(tmp_path, corpus_dir, {"bert-tiny": 0.66}, tfidf=None)
    ev = json.loads(path.read_text())
    ev["rows"].append({"corpus": "near", "family": "minilm-continued", "kind": "masked", "preset": None,
                       "objective": "mlm", "init_from": "general", "tasks": ["encoder", "classify"],
                       "budget_s": 0.0, "parameters": 22_700_000,
                       "downstream": {"frozen-mean": {"mean": 0.80, "std": 0.02, "folds": 5}}})  # fmt: skip
    path.write_text(json.dumps(ev))
    args = ["recommend", str(corpus_dir), "--budget", "10m", "--task", "encoder", "--tokenizer", str(bert_tokenizer),
            "--no-general", "--evidence", str(path), "--probe-steps", "1", "--seq-len", "32", "--batch-size", "2",
            "-o", str(tmp_path / "run.yaml")]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "for frozen embeddings: minilm-continued (as installed), no pretraining" in res.output
    rows = [x for x in res.output.splitlines() if "│ masked" in x]  # the evidence table's rows
    assert "(as installed)" in rows[0] and "0.800" in rows[0] and "22.7M" in rows[0]  # ranked first
    assert rows[0].split("│")[5].strip() == "0" and "bert-tiny (chosen)" in rows[1]  # 0 CPU-minutes to make


def test_the_probes_spread_names_what_the_evidence_picks_at_the_budget_beside():
    """recommend's timing probe reads up to PROBE_SPREAD apart between runs: when that could map the
    budget to another measured budget of the study, a reason says what the evidence picks there."""
    from domainlm import evidence as evmod
    from domainlm.recommend import PROBE_SPREAD, Recommendation, choose, spread_reason

    def row(family, budget_s, f1):
        return {"corpus": "c", "family": family, "kind": "masked", "preset": family, "objective": "mlm",
                "init_from": None, "tasks": ["encoder", "classify"], "budget_s": budget_s,
                "downstream": {"frozen-mean": {"mean": f1, "std": 0.01, "folds": 5}}}  # fmt: skip

    tfidf = {"corpus": "c", "family": "tfidf+svm", "kind": "classical", "tasks": ["classify"], "budget_s": None,
             "downstream": {"tfidf+svm": {"mean": 0.75, "std": 0.01, "folds": 5}}}  # fmt: skip
    ev = {"corpora": {"c": {"characters": 1000}},
          "rows": [row("bert-tiny", 120, 0.60), row("bert-mini", 120, 0.70),
                   row("bert-tiny", 600, 0.80), row("bert-mini", 600, 0.65), tfidf]}  # fmt: skip
    cands = [
        Candidate(p, "scratch", "mlm", 1, 1.0, "domain", 1.0, preset=p) for p in ("bert-tiny", "bert-mini")
    ]

    def rec(budget_s, ratio):
        return Recommendation(cands[0], cands, [], {"characters": 1000}, {}, budget_s, budget_s, budget="b",
                              speed_ratio=ratio)  # fmt: skip

    # 5 minutes at ratio 1.0: 600 s is the nearest budget (log scale), 240 s (-20%) is nearer to 120 s
    assert PROBE_SPREAD == 0.2
    r = rec(300, 1.0)
    look = evmod.lookup(ev, 1000, 300, "encoder")
    assert look.budget_s == 600
    why = spread_reason(ev, look, r, cands[0])
    assert "b here may compare with 4 min to 6 min of the study's" in why
    assert (
        "could then be 2 min, not 10 min: there it picks bert-mini 0.700 ± 0.010 by frozen-mean instead of bert-tiny"
        in why
    )
    assert "tfidf+svm is the better buy" in why  # r.classical is None; at 2 min TF-IDF is ahead
    # choose() puts it after the evidence sentence and the speed ratio
    for r_ in ev["rows"][:4]:
        r_["probe_tokens_per_s"] = 1.0  # the candidates' 1.0 tokens/s: a ratio of 1
    choose(r, ev, "encoder", None)
    assert r.choice.preset == "bert-tiny" and r.reasons[2].startswith("the timing probe varies between runs")
    # the same pick at the budget beside: said as such
    ev["rows"][1]["downstream"]["frozen-mean"]["mean"] = 0.5
    assert "there the evidence picks bert-tiny too" in spread_reason(ev, look, rec(300, 1.0), cands[0])
    # the spread stays within the nearest budget's reach, or no ratio was measured: nothing to say
    assert spread_reason(ev, evmod.lookup(ev, 1000, 600, "encoder"), rec(600, 1.0), cands[0]) is None
    assert spread_reason(ev, look, rec(300, None), cands[0]) is None


def test_with_a_screen_the_probes_spread_names_the_families_raced_at_the_budget_beside():
    from domainlm import evidence as evmod
    from domainlm.recommend import Recommendation, spread_reason

    def row(family, budget_s, bpc):
        return {"corpus": "c", "family": family, "kind": "generative", "preset": family, "objective": "clm",
                "init_from": None, "tasks": ["generator", "classify"], "budget_s": budget_s, "bits_per_char": bpc}  # fmt: skip

    ev = {"corpora": {"c": {"characters": 1000}},
          "rows": [row("gpt-mini", 360, 1.0), row("llama-mini", 360, 1.1), row("lstm-mini", 360, 1.2),
                   row("gpt-mini", 600, 1.0), row("llama-mini", 600, 1.3), row("lstm-mini", 600, 0.9)]}  # fmt: skip
    cands = [Candidate(p, "scratch", "clm", 1, 1.0, "domain", 1.0, preset=p) for p in ("gpt-mini", "llama-mini", "lstm-mini")]  # fmt: skip
    rec = Recommendation(
        cands[0], cands, [], {"characters": 1000}, {}, 300, 300, budget="5m", speed_ratio=1.5
    )
    look = evmod.lookup(ev, 1000, 450, "generator")  # 5 minutes at 1.5x: 7.5 study minutes, nearest 6
    assert look.budget_s == 360
    raced = [cands[0], cands[1]]
    why = spread_reason(ev, look, rec, cands[0], raced)
    assert (
        "could then be 10 min, not 6 min: there the screen would race lstm-mini and gpt-mini instead of"
        in why
    )
    assert "instead of gpt-mini and llama-mini" in why
