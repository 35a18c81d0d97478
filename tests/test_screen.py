"""recommend's screen for a generator: the projection and decision rules on given numbers, the race wired
into recommend (with a stand-in for the training), and one real screen on a tiny corpus (slow)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from domainlm import config as cfgmod
from domainlm import screen as scrmod
from domainlm.cli import screen_table
from domainlm.config import RunConfig
from domainlm.errors import UserError
from domainlm.recommend import recommend

GEN = ["generator", "classify"]


def _row(corpus: str, preset: str | None, budget_s: float | None, bpc: float) -> dict:
    if preset is None:
        return {"corpus": corpus, "family": "ngram", "kind": "classical", "tasks": ["generator"],
                "budget_s": None, "bits_per_char": bpc}  # fmt: skip
    return {"corpus": corpus, "family": preset, "kind": "generative", "preset": preset, "objective": "clm",
            "init_from": None, "tasks": GEN, "budget_s": budget_s, "bits_per_char": bpc}  # fmt: skip


# 'near': the transformers win (llama-mini 1.20 at 6 min against the 5-gram's 1.50); 'far': the 5-gram wins
CURVES = {
    "near": {"gpt-mini": (1.40, 1.30), "llama-mini": (1.35, 1.20), None: (1.50,)},
    "far": {"gpt-mini": (2.00, 1.50), "llama-mini": (2.10, 1.60), None: (1.10,)},
}


def _ev(chars: int, corpora=("near", "far")) -> dict:
    rows = []
    for corpus in corpora:
        for preset, values in CURVES[corpus].items():
            budgets = (None,) if preset is None else (120.0, 360.0)
            rows += [_row(corpus, preset, b, v) for b, v in zip(budgets, values, strict=True)]
    sizes = {"near": chars, "far": chars * 1000}
    return {"format_version": 1, "study": "synthetic test study", "written": "test",
            "corpora": {c: {"characters": sizes[c], "documents": 50} for c in corpora},
            "noise": {"bits_per_char": 0.01}, "rows": rows}  # fmt: skip


def test_projection_takes_the_most_favourable_study_ratio_and_never_worsens():
    ev = _ev(1000)
    p = scrmod.project(ev, "gpt-mini", "gpt-mini", 1.6, 120, 600)  # 10 min: nearest measured is 6 min
    assert p.ratio == pytest.approx(1.50 / 2.00) and "'far'" in p.source and "2 min" in p.source
    assert p.value == pytest.approx(1.6 * 0.75)
    same = scrmod.project(
        ev, "gpt-mini", "gpt-mini", 1.6, 120, 150
    )  # the run's nearest budget is the screen's
    assert same.ratio == 1.0 and "the screen's" in same.source
    worse = _ev(1000, corpora=("near",))
    worse["rows"] = [r | {"bits_per_char": 1.5} if r.get("budget_s") == 360.0 else r for r in worse["rows"]]
    assert scrmod.project(worse, "gpt-mini", "gpt-mini", 1.6, 120, 360).ratio == 1.0  # 1.40 -> 1.50: kept
    none = scrmod.project(ev, "rnn", "lstm-mini", 1.6, 120, 600)
    assert none.ratio == 1.0 and "not projected" in none.source


@pytest.mark.parametrize(("ngram", "classical"), [(1.00, True), (1.205, True), (1.30, False)])
def test_the_5gram_is_the_better_buy_when_ahead_or_within_noise(ngram, classical):
    s = scrmod.Screen(120.0, {"a": 1.5, "b": 1.6}, ngram, 1.0)
    projections = [scrmod.Projection("a", 1.5, 0.8, ""), scrmod.Projection("b", 1.6, 0.9, "")]
    best, better = scrmod.decide(s, projections, noise=0.01)
    assert best.name == "a" and best.value == pytest.approx(1.2) and better is classical


def test_the_screen_is_short_when_compute_limits_the_run_and_to_the_bottom_when_data_does():
    # at most 4 passes over the corpus: 2 minutes (or the run's budget), no early stop
    assert scrmod.screen_plan("auto", 3600, 2.0) == scrmod.Plan(120, 2.0)
    assert scrmod.screen_plan("auto", 60, 4.0) == scrmod.Plan(60, 4.0)
    # more: the run's own budget, stopped when held-out loss stops falling
    assert scrmod.screen_plan("auto", 360, 12.0) == scrmod.Plan(360, 12.0, scrmod.PATIENCE)
    assert (
        scrmod.screen_plan("auto", 360, 12.0).data_limited
        and not scrmod.screen_plan("auto", 360, 2).data_limited
    )
    # a duration caps either
    assert scrmod.screen_plan("5m", 3600, 2.0) == scrmod.Plan(300, 2.0)
    assert scrmod.screen_plan("5m", 200, 2.0) == scrmod.Plan(200, 2.0)
    assert scrmod.screen_plan("5m", 3600, 12.0) == scrmod.Plan(300, 12.0, scrmod.PATIENCE)


# ----------------------------------------------------------------------------------------------------
# wired into recommend: run_screen replaced by a stand-in returning given numbers


@pytest.fixture
def fake_screen(monkeypatch):
    calls: list[tuple[list[str], float, int | None]] = []
    result = {"bits": {"llama-mini": 1.70, "gpt-mini": 1.60}, "ngram": 1.30, "stopped_by": "budget"}

    def run(corpus, tokenizer, cands, plan, reporter=None):
        calls.append(([c.name for c in cands], plan.seconds, plan.patience))
        assert (tokenizer / "tokenizer.json").is_file() or (tokenizer / "vocab.txt").is_file()
        names = list(result["bits"])
        return scrmod.Screen(
            plan.seconds, dict(result["bits"]), result["ngram"], 1.0, dict.fromkeys(names, 9), plan.patience,
            dict.fromkeys(names, result["stopped_by"]), dict.fromkeys(names, 45.0),
        )  # fmt: skip

    monkeypatch.setattr(scrmod, "run_screen", run)
    return calls, result


@pytest.fixture
def compute_limited(monkeypatch):
    """The test corpus is tiny: any budget passes over it many times. Here it counts as compute-limited."""
    monkeypatch.setattr(scrmod, "DATA_LIMITED_EPOCHS", 1e12)


def _gen(corpus_dir, tok, tmp_path, ev: dict, **kw):
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(ev))
    args = dict(budget="10m", task="generator", tokenizer=tok, general=False, evidence=path, probe_steps=1,
                seq_len=32, batch_size=2, output=tmp_path / "run.yaml")  # fmt: skip
    return recommend(corpus_dir, **(args | kw))


def _chars(corpus_dir) -> int:
    from domainlm.corpus.prepare import read_stats

    return read_stats(corpus_dir)["characters"]["train"]


def test_when_the_study_corpora_disagree_the_screen_on_this_corpus_decides(
    corpus_dir, bert_tokenizer, tmp_path, fake_screen, compute_limited
):
    calls, result = fake_screen
    rec = _gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir)))
    # the lookup alone picks llama-mini (1.20 on 'near'); the screen races it and gpt-mini for 2 minutes
    assert calls == [(["llama-mini", "gpt-mini"], 120.0, None)]
    # projected to 10 min with 'far''s ratios (the most favourable): llama 1.70 x 1.60/2.10, gpt 1.60 x 0.75
    assert rec.choice.preset == "gpt-mini" and rec.classical is None
    assert rec.basis == "evidence and a screen on this corpus" and rec.screen.ngram == 1.30
    assert [round(p.value, 3) for p in rec.projections] == [round(1.70 * 1.60 / 2.10, 3), 1.2]
    text = "\n".join(rec.reasons)
    assert "screened on this corpus: llama-mini 1.700, gpt-mini 1.600" in text and "the 5-gram 1.300" in text
    assert "choice below is measured on this corpus" in text and "a neural LM pays" in text
    assert "limited by compute" in text and "the study corpus most favourable to it" in text
    assert cfgmod.load(RunConfig, rec.config_path).model.preset == "gpt-mini"  # the run config trains it
    # the 5-gram ahead on this corpus: the classical verdict, and the config still trains the best neural
    result["ngram"] = 1.0
    rec = _gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir)))
    assert rec.classical == "ngram" and rec.choice.preset == "gpt-mini"
    assert "the n-gram is the better buy at this budget on this corpus" in "\n".join(rec.reasons)


def test_a_generator_is_screened_unless_switched_off(
    corpus_dir, bert_tokenizer, tmp_path, fake_screen, compute_limited
):
    calls, _ = fake_screen
    # one study corpus, so nothing disagrees: auto screens all the same (the corpus, not its size, decides)
    rec = _gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir), corpora=("near",)))
    assert calls == [(["llama-mini", "gpt-mini"], 120.0, None)] and rec.screen is not None
    assert not any("depends on the corpus" in r for r in rec.reasons)
    calls.clear()
    rec = _gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir)), screen="off")
    assert (
        calls == [] and rec.screen is None and rec.basis == "evidence" and rec.choice.preset == "llama-mini"
    )
    rec = _gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir)), task="encoder", screen="2m")
    assert calls == [] and rec.screen is None  # encoders are judged by the lookup (no causal rows here)
    # a duration sets the screen's budget; a 1-minute run is screened whole
    rec = _gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir)), budget="1m", screen="5m")
    assert calls == [(["llama-mini", "gpt-mini"], 60.0, None)] and rec.screen is not None
    assert "the screen had this run's whole budget" in "\n".join(rec.reasons)
    assert all(p.ratio == 1.0 for p in rec.projections)


def test_a_run_limited_by_its_data_is_screened_to_each_familys_bottom(
    corpus_dir, bert_tokenizer, tmp_path, fake_screen
):
    calls, result = fake_screen
    # the tiny test corpus: a 10-minute run passes over it far more than 4 times
    result |= {"bits": {"llama-mini": 1.22, "gpt-mini": 1.23}, "stopped_by": "patience"}
    rec = _gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir)))
    assert calls == [(["llama-mini", "gpt-mini"], 600.0, scrmod.PATIENCE)]
    assert min(c.epochs for c in rec.candidates if c.objective == "clm") > scrmod.DATA_LIMITED_EPOCHS
    # the bottoms are what the run ships: not projected, the lowest measured is chosen
    assert [(p.name, p.ratio, p.value) for p in rec.projections] == [
        ("llama-mini", 1.0, 1.22),
        ("gpt-mini", 1.0, 1.23),
    ]
    assert rec.choice.preset == "llama-mini" and rec.classical is None
    text = "\n".join(rec.reasons)
    assert "limited by its data" in text and "Muennighoff et al. 2023" in text
    assert "or until its held-out loss stopped falling" in text and "lowest after 45 s" in text
    assert "for this 10m run, not projected: llama-mini 1.220" in text and "validated every 30 s," in text
    # with the same numbers carried by the study's 2 -> 6 minute ratios, gpt-mini would have won
    assert 1.23 * 1.50 / 2.00 < 1.22 * 1.60 / 2.10
    console = Console(width=200, record=True)
    console.print(screen_table(rec))
    table = console.export_text()
    assert "up to 600 s each, stopped when held-out loss stopped falling" in table and "45 s" in table


def test_a_screen_capped_by_the_flag_says_so_not_that_it_had_the_runs_budget(
    corpus_dir, bert_tokenizer, tmp_path, fake_screen
):
    calls, _ = fake_screen
    rec = _gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir)), screen="10s")
    assert calls == [(["llama-mini", "gpt-mini"], 10.0, scrmod.PATIENCE)]
    text = "\n".join(rec.reasons)
    assert "for at most 10 s (--screen caps the run's 10m)" in text
    assert "training each for --screen's 10 s or until" in text and "this run's" not in text
    full = "\n".join(_gen(corpus_dir, bert_tokenizer, tmp_path, _ev(_chars(corpus_dir))).reasons)
    assert "with this run's budget" in full and "for this run's 10 min or until" in full


def test_cli_prints_the_screen_and_rejects_a_bad_screen_value(
    corpus_dir, bert_tokenizer, tmp_path, fake_screen, compute_limited
):
    from click.testing import CliRunner

    from domainlm.cli import cli

    path = tmp_path / "ev.json"
    path.write_text(json.dumps(_ev(_chars(corpus_dir))))
    args = ["recommend", str(corpus_dir), "--budget", "10m", "--task", "generator", "--tokenizer",
            str(bert_tokenizer), "--no-general", "--evidence", str(path), "--probe-steps", "1", "--seq-len",
            "32", "--batch-size", "2", "-o", str(tmp_path / "run.yaml")]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "screened on this corpus (120 s of training each" in res.output
    assert "gpt-mini (chosen)" in res.output and "5-gram" in res.output
    assert "decided by: evidence and a screen on this corpus" in res.output
    res = CliRunner().invoke(cli, [*args, "--screen", "soon"])  # the console script maps it to exit 2
    assert isinstance(res.exception, UserError) and "'screen'" in str(res.exception)
    assert "'soon' is not auto, off or a duration" in str(res.exception)


@pytest.mark.slow
def test_a_real_screen_trains_scores_and_keeps_nothing(corpus_dir, tmp_path):
    from domainlm.recommend import Candidate
    from domainlm.tokens.tokenizer import train_tokenizer

    tok = train_tokenizer(corpus_dir, tmp_path / "tok", kind="bpe", vocab_size=300, style="gpt").output
    cand = Candidate("gpt-mini", "scratch", "clm", 1, 1.0, "domain", 1.0, preset="gpt-mini")
    s = scrmod.run_screen(corpus_dir, tok, [cand], scrmod.Plan(4.0, 1.0))
    assert s.budget_s == 4.0 and s.steps["gpt-mini"] >= 1 and s.stopped_by["gpt-mini"] == "budget"
    assert 0 < s.bits["gpt-mini"] < 20 and 0 < s.ngram < 20 and s.wall_s > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # the runs lived in a temporary folder


@pytest.mark.slow
def test_a_real_data_limited_screen_stops_each_family_at_its_bottom(corpus_dir, tmp_path, monkeypatch):
    """On the tiny test corpus a 3-minute run is hundreds of passes: held-out loss turns within the
    budget and the screen stops the family after PATIENCE validations without a lower one."""
    from domainlm.recommend import Candidate
    from domainlm.tokens.tokenizer import train_tokenizer

    # validated every 10 s instead of 30: the same rule, stopped ~40 s sooner after the bottom (CI time)
    monkeypatch.setattr(scrmod, "PATIENCE_EVERY", "10s")

    tok = train_tokenizer(corpus_dir, tmp_path / "tok", kind="bpe", vocab_size=300, style="gpt").output
    cand = Candidate("gpt-mini", "scratch", "clm", 1, 1.0, "domain", 1.0, preset="gpt-mini")
    s = scrmod.run_screen(corpus_dir, tok, [cand], scrmod.screen_plan("auto", 180.0, 500.0))
    assert s.patience == scrmod.PATIENCE and s.stopped_by["gpt-mini"] == "patience"
    assert 0 < s.best_s["gpt-mini"] < 180 and 0 < s.bits["gpt-mini"] < 20


def test_a_budget_that_measured_one_causal_family_races_the_next_best_of_the_budget_beside_it():
    from domainlm import evidence as evmod
    from domainlm.recommend import Candidate, screen_candidates

    ev = _ev(1000, corpora=("near",))
    ev["rows"].append(_row("near", "gpt-mini", 1800.0, 1.0))  # a long stage: the best family alone
    cands = [
        Candidate(p, "scratch", "clm", 4_000_000, 5000.0, "domain", 1.3, preset=p)
        for p in CURVES["near"]
        if p
    ]
    look = evmod.lookup(ev, 1000, 1800, "generator")
    assert look.budget_s == 1800.0 and [e.family for e in look.entries if not e.classical] == ["gpt-mini"]
    raced, note = screen_candidates(look, cands, ev)
    assert [c.name for c in raced] == ["gpt-mini", "llama-mini"]
    assert "measure 1 causal family" in note and "llama-mini (the next best at 6 min)" in note
    # without the evidence (or where the budget measured two) the race is the look's alone
    assert [c.name for c in screen_candidates(look, cands)[0]] == ["gpt-mini"]
    six = evmod.lookup(ev, 1000, 360, "generator")
    raced, note = screen_candidates(six, cands, ev)
    assert [c.name for c in raced] == ["llama-mini", "gpt-mini"] and note is None
