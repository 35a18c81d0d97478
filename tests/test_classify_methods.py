"""Classifier methods and the leaderboard: every method on the same folds, the winner rule, safe saving
and reloading, serving and exporting a classical winner, TensorBoard events."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from domainlm.classify import leaderboard as lb
from domainlm.classify import methods as registry
from domainlm.classify.finetune import finetune
from domainlm.config import FinetuneConfig
from domainlm.errors import UserError
from tests.tiny_models import gpt_dir  # noqa: F401  (fixture)

_EXEC = [
    "The President shall be elected by the members of an electoral college.",
    "The Governor may by order declare the provisions of this article applicable.",
    "The executive power of the Union shall be vested in the President.",
]
_RIGHTS = [
    "Every citizen shall have the right to freedom of speech and expression.",
    "No person shall be deprived of his life or personal liberty except according to law.",
    "All citizens shall have the right to assemble peaceably and without arms.",
]


def _rows(n: int = 32, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "exec" if i % 2 == 0 else "rights"
        pool = _EXEC if label == "exec" else _RIGHTS
        rows.append(
            {
                "text": f"Item {i}. " + " ".join(rng.choice(pool) for _ in range(rng.randint(2, 5))),
                "label": label,
            }
        )
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    p = tmp_path_factory.mktemp("cls") / "d.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return p


@pytest.fixture(scope="module")
def tiny_encoder(bert_tokenizer, tmp_path_factory):
    """A tiny BERT masked LM with the test tokenizer (a stand-in for a run's model/)."""
    from transformers import BertConfig, BertForMaskedLM

    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(bert_tokenizer)
    out = tmp_path_factory.mktemp("enc") / "model"
    torch.manual_seed(0)
    conf = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
    )
    BertForMaskedLM(conf).save_pretrained(out)
    tok.save_pretrained(out)
    return out


FAST = ["tfidf+lr", "tfidf+svm", "tfidf-wc+lr", "tfidf-wc+svm", "fasttext"]
SMALL = ["max_length=32", "max_windows=3", "stride=4", "epochs=2", "pair_budget=8", "lr=3e-3"]


# ----------------------------------------------------------------------------------------------------
# the winner rule


def _run(name: str, f1: list[float], cpu: float) -> lb.MethodRun:
    folds = [{"accuracy": v, "macro_f1": v, "micro_f1": v} for v in f1]
    return lb.MethodRun(name, folds, cpu_s=cpu)


def test_a_tie_within_noise_goes_to_the_cheaper_method():
    runs = {
        "slow": _run("slow", [0.90, 0.80, 0.95, 0.85, 0.92], 600.0),
        "cheap": _run("cheap", [0.85, 0.86, 0.88, 0.84, 0.90], 1.0),  # 0.008 lower on average, noisy
        "bad": _run("bad", [0.50, 0.52, 0.49, 0.51, 0.50], 0.5),  # cheapest, clearly worse
    }
    rows = lb.rank(runs, test_over_train=0.25)
    assert [r["method"] for r in rows] == ["slow", "cheap", "bad"]  # by mean macro-F1
    by = {r["method"]: r for r in rows}
    assert by["cheap"]["tied_with_best"] and not by["bad"]["tied_with_best"]
    assert by["bad"]["p_vs_best"] < 0.05 <= by["cheap"]["p_vs_best"]
    assert [r["method"] for r in rows if r["winner"]] == ["cheap"]


def test_a_clear_difference_goes_to_the_best_and_one_fold_has_no_test():
    runs = {
        "best": _run("best", [0.90, 0.91, 0.92, 0.90, 0.91], 100.0),
        "worse": _run("worse", [0.80, 0.81, 0.80, 0.82, 0.80], 1.0),
    }
    assert [r["method"] for r in lb.rank(runs, 0.25) if r["winner"]] == ["best"]
    one = {"a": _run("a", [0.9], 50.0), "b": _run("b", [0.89], 1.0)}
    rows = lb.rank(one, 0.25)
    assert [r["method"] for r in rows if r["winner"]] == ["a"] and rows[1]["p_vs_best"] is None


def test_method_names_auto_unknown_and_multi_label():
    assert registry.method_names("auto", multi=False) == registry.AUTO
    assert set(registry.method_names("auto", multi=True)) <= registry.MULTI_LABEL
    assert registry.method_names(["tfidf+svm,fasttext"], multi=False) == ["tfidf+svm", "fasttext"]
    with pytest.raises(UserError, match=r"nope.*tfidf\+svm"):
        registry.method_names("tfidf+svm,nope", multi=False)
    with pytest.raises(UserError, match="fasttext.*multi-label"):
        registry.method_names("fasttext", multi=True)


# ----------------------------------------------------------------------------------------------------
# methods save safely and reload to the same predictions


@pytest.mark.parametrize(
    "name", ["tfidf+svm", "tfidf-wc+lr", "fasttext", "cnn", "frozen-max", "hybrid", "hybrid-avg", "static"]
)
def test_a_saved_method_reloads_with_the_same_probabilities(name, tiny_encoder, tmp_path):
    rows = _rows()
    texts, labels = [r["text"] for r in rows], ["exec", "rights"]
    y = np.array([labels.index(r["label"]) for r in rows])
    cfg = FinetuneConfig(max_length=32, max_windows=3, stride=4)
    ctx = registry.Context(labels, False, cfg, tiny_encoder, corpus=texts)
    fitted = registry.make(name, ctx).fit(texts[:24], y[:24], seed=0)
    fitted.save(tmp_path / "m")
    assert not list((tmp_path / "m").rglob("*.pkl")) and not list((tmp_path / "m").rglob("*.pickle"))
    again = registry.load_fitted(tmp_path / "m")
    a, b = fitted.predict_proba(texts[24:]), again.predict_proba(texts[24:])
    assert a.shape == (8, 2) and np.allclose(a.sum(1), 1, atol=1e-4)
    assert np.allclose(a, b, atol=1e-5) and fitted.size() > 0


def test_cnn_learns_the_words_that_separate_the_classes_and_repeats_itself():
    rows = _rows(64, seed=3)
    texts, labels = [r["text"] for r in rows], ["exec", "rights"]
    y = np.array([labels.index(r["label"]) for r in rows])
    ctx = registry.Context(labels, False, FinetuneConfig())
    fits = [registry.make("cnn", ctx).fit(texts[:48], y[:48], seed=0) for _ in range(2)]
    p = fits[0].predict_proba(texts[48:])
    assert (p.argmax(1) == y[48:]).mean() >= 0.9  # unseen items, the same vocabulary
    assert np.array_equal(p, fits[1].predict_proba(texts[48:]))  # same input and seed, same model
    # a document longer than the cap is read up to it; an empty one still gets probabilities
    assert np.allclose(fits[0].predict_proba(["president " * 5000, ""]).sum(1), 1, atol=1e-5)


def test_fasttext_gives_the_same_model_after_other_methods_freed_large_buffers(tiny_encoder):
    """fastText 0.9.3 leaves most of its input matrix uninitialised; after a character TF-IDF has freed
    large buffers in this process that memory held old data (NaN in 3 of 4 processes before the fix)"""
    rows = _rows()
    texts, labels = [r["text"] for r in rows], ["exec", "rights"]
    y = np.array([labels.index(r["label"]) for r in rows])
    ctx = registry.Context(labels, False, FinetuneConfig(), tiny_encoder, corpus=texts)
    runs = []
    for _ in range(3):
        registry.make("tfidf-wc+svm", ctx).fit(texts, y, seed=0)
        runs.append(registry.make("fasttext", ctx).fit(texts[:16], y[:16], seed=1).predict_proba(texts[16:]))
    assert np.isfinite(runs[0]).all() and np.allclose(runs[0].sum(1), 1, atol=1e-4)
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


def test_an_untrusted_type_in_a_skops_file_is_refused(tmp_path):
    import skops.io as sio

    from domainlm.classify.methods import store

    class Sneaky:  # any type outside scikit-learn/numpy: what a tampered file would carry
        pass

    sio.dump({"x": Sneaky()}, str(tmp_path / "bad.skops"))
    with pytest.raises(UserError, match="does not trust"):
        store.load_skops(tmp_path / "bad.skops")


# ----------------------------------------------------------------------------------------------------
# the leaderboard end to end: classical methods (fast)


def test_leaderboard_ships_a_classical_winner_that_serves_and_exports(tiny_encoder, data, tmp_path):
    from fastapi.testclient import TestClient

    from domainlm.export import export
    from domainlm.serve import build_app

    res = finetune(tiny_encoder, data, folds=2, output=tmp_path / "out", methods=",".join(FAST))
    assert sorted(r["method"] for r in res.table) == sorted(FAST)
    assert all(len(res.per_fold[m]) == 2 for m in FAST)  # every method on the same 2 folds
    assert sum(r["winner"] for r in res.table) == 1 and res.shipped == res.winner
    report = json.loads((res.output / "metrics.json").read_text())
    assert report["winner"] == res.winner and "paired t-test" in report["rule"]
    assert {"cpu_seconds", "size_bytes", "p_vs_best"} <= set(report["leaderboard"][0])
    assert (res.output / "leaderboard.png").stat().st_size > 1000
    card = (res.model_dir / "README.md").read_text()
    assert "## Leaderboard" in card and all(m in card for m in FAST) and "(winner)" in card
    assert (res.model_dir / "domainlm_method.json").is_file()  # not a transformers model

    app, engine, _ = build_app(res.output)
    with TestClient(app) as c:
        assert c.get("/info").json()["routes"] == ["/predict"]
        scores = c.post("/predict", json={"inputs": _EXEC[0] + " " + _EXEC[2]}).json()
        assert scores[0]["label"] == "exec" and abs(sum(s["score"] for s in scores) - 1) < 1e-6
        assert c.post("/embed", json={"inputs": "x"}).status_code == 422

    ex = export(res.output)
    assert "domainlm_method.json" in ex.files and ex.task == "classify"
    assert registry.load_fitted(ex.output).predict_proba([_RIGHTS[0]])[0].argmax() == 1
    with pytest.raises(UserError, match="does not apply"):
        export(res.output, "onnx")


def test_cli_methods_flag_prints_the_leaderboard(tiny_encoder, data, tmp_path, capsys):
    from click.testing import CliRunner

    from domainlm.cli import app

    out = tmp_path / "o"
    r = CliRunner().invoke(
        app,
        [
            "finetune",
            str(tiny_encoder),
            str(data),
            "--methods",
            "tfidf+svm,tfidf+lr",
            "--folds",
            "2",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "winner: " in r.output and "p vs" in r.output
    from domainlm.cli import main

    with pytest.raises(SystemExit) as e:
        main(["finetune", str(tiny_encoder), str(data), "--methods", "nope"])
    assert e.value.code == 2 and "tfidf+svm" in capsys.readouterr().err


def test_cli_leaderboard_only_ranks_the_methods_and_leaves_the_model_folder_alone(
    tiny_encoder, data, tmp_path
):
    from click.testing import CliRunner

    from domainlm.cli import app

    out = tmp_path / "o"
    earlier = out / "model" / "domainlm_method.json"  # a model an earlier run shipped
    earlier.parent.mkdir(parents=True)
    earlier.write_text('{"method": "earlier"}')
    args = ["finetune", str(tiny_encoder), str(data), "--methods", "tfidf+svm,tfidf+lr", "--folds", "2"]
    r = CliRunner().invoke(app, [*args, "-o", str(out), "--leaderboard-only"])
    assert r.exit_code == 0, r.output
    assert "no model refit or saved (--leaderboard-only)" in r.output and "shipped" not in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {row["method"] for row in metrics["leaderboard"]} == {"tfidf+svm", "tfidf+lr"}
    assert metrics["winner"] in {"tfidf+svm", "tfidf+lr"} and metrics["shipped"] is None
    assert sorted(p.name for p in (out / "model").iterdir()) == ["domainlm_method.json"]
    assert earlier.read_text() == '{"method": "earlier"}'
    # the default still ships the winner there
    r = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "shipped: " in r.output and earlier.read_text() != '{"method": "earlier"}'


# ----------------------------------------------------------------------------------------------------
# windows pooled per document; TensorBoard


def test_full_finetune_pools_every_window_of_a_document():
    from domainlm.classify.transformer import document_batches, pool_documents

    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])  # doc 0 has windows 0-1, doc 1 window 2
    assert torch.allclose(pool_documents(logits, [2, 1]), torch.tensor([[2.0, 1.0], [0.0, 4.0]]))
    sizes = {0: 3, 1: 1, 2: 2, 3: 4, 4: 1}
    batches = document_batches(list(sizes), sizes, 4, np.random.default_rng(0))
    assert sorted(d for b in batches for d in b) == list(sizes)  # each document once per epoch
    assert all(sum(sizes[d] for d in b) <= 4 for b in batches)


def test_tensorboard_events_for_each_fold(tiny_encoder, data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = finetune(
        tiny_encoder, data, mode="head", folds=2, output=tmp_path / "o", overrides=SMALL + ["baselines=false"]
    )
    name = res.table[0]["method"]
    for k in (1, 2):
        acc = EventAccumulator(str(res.output / "tensorboard" / name / f"fold-{k}"))
        acc.Reload()
        tags = acc.Tags()["scalars"]
        assert {"train/loss", "validation/macro_f1"} <= set(tags)
        f1 = [e.value for e in acc.Scalars("validation/macro_f1")]
        assert len(f1) >= 1 and all(0 <= v <= 1 for v in f1)


# ----------------------------------------------------------------------------------------------------
# every method on the same folds (slow: neural methods)


@pytest.mark.slow
def test_every_method_runs_on_the_same_folds(tiny_encoder, data, tmp_path):
    names = list(registry.METHODS)
    res = finetune(tiny_encoder, data, folds=2, output=tmp_path / "o", methods=names, overrides=SMALL)
    assert sorted(r["method"] for r in res.table) == sorted(names)
    assert all(len(res.per_fold[m]) == 2 for m in names)
    winner = res.winner
    if (res.model_dir / "config.json").is_file():
        from transformers import pipeline

        assert pipeline("text-classification", model=str(res.model_dir))(_EXEC[0])[0]["label"] in {
            "exec",
            "rights",
        }
    else:
        assert registry.load_fitted(res.model_dir).predict_proba([_EXEC[0]]).shape == (1, 2)
    assert winner in names


def test_full_finetune_of_a_causal_lm_pads_its_batches(gpt_dir, data, tmp_path):  # noqa: F811
    """A GPT-2 run's config has no pad token, and its sequence classifier pools the last token before the
    padding: fine-tuning writes the tokenizer's pad id into the config (it failed on batches > 1: the
    model-selection study's gpt-mini cell), and the shipped classifier batches texts of unequal length."""
    from transformers import AutoConfig, pipeline

    assert AutoConfig.from_pretrained(gpt_dir).pad_token_id is None
    res = finetune(
        gpt_dir,
        data,
        folds=2,
        output=tmp_path / "o",
        methods="finetune-full",
        overrides=[*SMALL, "baselines=false"],
    )
    assert res.shipped == "finetune-full" and len(res.per_fold["finetune-full"]) == 2
    shipped = AutoConfig.from_pretrained(res.model_dir)
    assert shipped.pad_token_id is not None and shipped.architectures == ["GPT2ForSequenceClassification"]
    clf = pipeline("text-classification", model=str(res.model_dir))
    batch = clf([_EXEC[0], "Article 21.", _RIGHTS[1]], batch_size=3)
    assert [r["label"] for r in batch] == [clf(t)[0]["label"] for t in (_EXEC[0], "Article 21.", _RIGHTS[1])]


# ----------------------------------------------------------------------------------------------------
# every family of the study embeds: the RNN LM's recurrent layers, T5's encoder


@pytest.fixture(scope="module")
def tiny_rnn_and_t5(bert_tokenizer, tmp_path_factory):
    """A tiny LSTM LM saved as domainlm saves it (no config.json) and a tiny T5 span model."""
    from transformers import T5Config, T5ForConditionalGeneration

    from domainlm.pretrain.rnn import RNNLM, RNNConfig, write_weights
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(bert_tokenizer)
    base = tmp_path_factory.mktemp("bodies")
    torch.manual_seed(0)
    rnn = base / "rnn"
    rnn.mkdir()
    write_weights(RNNLM(RNNConfig(vocab_size=len(tok), hidden_size=24, num_hidden_layers=1)), rnn)
    tok.save_pretrained(rnn)
    t5 = base / "t5"
    conf = T5Config(vocab_size=len(tok), d_model=24, d_kv=8, d_ff=48, num_layers=1, num_heads=2,
                    pad_token_id=tok.pad_token_id, decoder_start_token_id=tok.pad_token_id)  # fmt: skip
    T5ForConditionalGeneration(conf).save_pretrained(t5)
    tok.save_pretrained(t5)
    return {"rnn": rnn, "t5": t5}


@pytest.mark.parametrize("family", ["rnn", "t5"])
def test_frozen_embeddings_of_an_rnn_and_a_t5_encoder_ignore_padding_and_reload(
    family, tiny_rnn_and_t5, tmp_path
):
    from domainlm.classify.finetune import resolve_model_dir
    from domainlm.classify.methods.frozen import Encoder

    folder = tiny_rnn_and_t5[family]
    assert resolve_model_dir(folder) == folder  # finetune accepts the folder (the RNN has no config.json)
    cfg = FinetuneConfig(max_length=32, max_windows=3, stride=4)
    enc = Encoder(folder, cfg)
    assert type(enc.model).__name__ == {"rnn": "RNNBody", "t5": "T5EncoderModel"}[family]
    short, long = "The President shall be elected.", "Parliament may by law regulate the Court " * 5
    alone = Encoder(folder, cfg).window_vectors([short])[0]
    batched = enc.window_vectors([short, long])[0]  # padded beside a longer text
    assert alone.shape == (1, 24)  # one window, the body's width
    assert np.allclose(alone, batched, atol=1e-5)
    rows = _rows()
    texts, labels = [r["text"] for r in rows], ["exec", "rights"]
    y = np.array([labels.index(r["label"]) for r in rows])
    ctx = registry.Context(labels, False, cfg, folder, corpus=texts)
    fitted = registry.make("frozen-mean", ctx).fit(texts[:24], y[:24], seed=0)
    fitted.save(tmp_path / "m")
    again = registry.load_fitted(tmp_path / "m")
    assert np.allclose(fitted.predict_proba(texts[24:]), again.predict_proba(texts[24:]), atol=1e-5)


def test_models_without_a_position_limit_take_the_configured_window():
    """XLNet's config answers max_position_embeddings -1 and the RNN's 0: no limit, not a negative window."""
    from transformers import BertConfig, XLNetConfig

    from domainlm.classify.transformer import max_positions
    from domainlm.pretrain.rnn import RNNConfig

    assert max_positions(XLNetConfig()) > 10**6 and max_positions(RNNConfig(vocab_size=5)) > 10**6
    assert max_positions(BertConfig(max_position_embeddings=64)) == 64
