"""finetune: data errors, splits, head-only and full training, search, reports, pipeline-loadable output."""

from __future__ import annotations

import json
import random

import pytest
import torch

from domainlm.classify.finetune import finetune, load_dataset, make_splits
from domainlm.config import FinetuneConfig
from domainlm.errors import UserError

_A = [
    "The President shall be elected by the members of an electoral college.",
    "The Governor may by order declare the provisions of this article applicable.",
]
_B = [
    "Any dispute arising under this agreement shall be referred to the tribunal.",
    "Every citizen shall have the right to freedom of speech and expression.",
]


def _docs(n: int = 40, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "exec" if i % 2 == 0 else "rights"
        sents = [rng.choice(_A if label == "exec" else _B) for _ in range(rng.randint(2, 6))]
        rows.append(
            {
                "text": f"Item {i}. " + " ".join(sents),
                "label": label,
                "tags": [label, "x"] if i % 3 else [label],
            }
        )
    return rows


@pytest.fixture(scope="module")
def tiny_model(bert_tokenizer, tmp_path_factory):
    """A tiny BERT masked LM saved as a HF folder with the test tokenizer (a stand-in for run/model)."""
    from transformers import BertConfig, BertForMaskedLM

    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(bert_tokenizer)
    out = tmp_path_factory.mktemp("tiny") / "model"
    torch.manual_seed(0)
    BertForMaskedLM(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            pad_token_id=tok.pad_token_id,
        )
    ).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _write(path, rows, fmt="jsonl"):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        import csv

        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["text", "label"])
            w.writeheader()
            for r in rows:
                w.writerow({"text": r["text"], "label": r["label"]})
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_full_finetune_learns_and_loads_in_pipeline(tiny_model, tmp_path):
    from transformers import pipeline

    data = _write(tmp_path / "d.csv", _docs(), "csv")
    res = finetune(
        tiny_model,
        data,
        mode="full",
        folds=2,
        output=tmp_path / "out",
        overrides=["epochs=6", "lr=3e-3", "max_length=16", "stride=4", "batch_size=8"],
    )
    methods = [r["method"] for r in res.table]
    assert methods[1:] == ["tfidf+lr", "tfidf+svm"] and res.folds == 2
    ours = res.table[0]
    assert ours["macro_f1"]["mean"] > 0.8, res.table  # a separable task: the tiny model must learn it
    report = json.loads((res.output / "metrics.json").read_text())
    assert report["windows"] > 40  # documents longer than 16 tokens were cut into several windows
    assert set(report["out_of_fold"]["per_class"]) == {"exec", "rights"}
    assert (res.output / "confusion.png").stat().st_size > 1000 and (res.output / "errors.jsonl").is_file()
    clf = pipeline("text-classification", model=str(res.model_dir))
    pred = clf("The President shall be elected by the members of an electoral college.")[0]
    assert pred["label"] in {"exec", "rights"} and 0 <= pred["score"] <= 1


def test_head_mode_freezes_the_body_and_cache_is_exact(tiny_model, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    from domainlm.classify.transformer import cls_states, head_logits, make_windows, pad_id, window_logits
    from domainlm.tokens.tokenizer import load_tokenizer

    data = _write(tmp_path / "d.parquet", _docs(30), "parquet")
    res = finetune(
        tiny_model, data, mode="head", output=tmp_path / "out", overrides=["epochs=2", "baselines=false"]
    )
    assert len(res.table) == 1 and res.table[0]["method"].endswith("(head)")  # baselines=false
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(res.model_dir / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(before[key], after[key])  # the body did not move
    assert not torch.equal(
        before.get("bert.pooler.dense.weight", torch.zeros(1)), after["bert.pooler.dense.weight"]
    )
    # the cached-[CLS] head computes exactly what the whole model computes
    cfg = FinetuneConfig(mode="head", max_length=16)
    ds = load_dataset(data, cfg)
    tok = load_tokenizer(res.model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(res.model_dir)).eval()
    w = make_windows(tok, ds.texts[:4], cfg, 64)
    with torch.no_grad():
        cached = head_logits(model, cls_states(model, w, pad_id(tok)))
        direct = window_logits(model, w, list(range(len(w.ids))), pad_id(tok))
    assert torch.allclose(cached, direct, atol=1e-4)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_modernbert_head_trains_on_cached_states_only_when_it_pools_the_first_token(pooling):
    """ModernBERT's classifier (head MLP, dropout, linear) on cached first-token states is exactly the
    whole model's computation; with mean pooling the states cannot be cached."""
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    from domainlm.classify.transformer import Windows, caches_cls, cls_states, head_logits, window_logits

    torch.manual_seed(0)
    conf = ModernBertConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=64, pad_token_id=0,
                            num_labels=3, classifier_pooling=pooling)  # fmt: skip
    model = ModernBertForSequenceClassification(conf).eval()
    assert caches_cls(model.config) == (pooling == "cls")
    if pooling == "mean":
        return
    w = Windows(ids=[[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16]], doc=[0, 0, 1])
    with torch.no_grad():
        cached = head_logits(model, cls_states(model, w, pad_token=0))
        direct = window_logits(model, w, [0, 1, 2], pad_token=0)
    assert cached.shape == (3, 3) and torch.allclose(cached, direct, atol=1e-5)


def test_splits_are_by_document_grouped_and_seeded(tmp_path):
    rows = _docs(30)
    rows.append(dict(rows[0]))  # an exact duplicate must land in the same fold as its twin
    data = _write(tmp_path / "d.jsonl", rows)
    cfg = FinetuneConfig(folds=3)
    ds = load_dataset(data, cfg)
    a, b = make_splits(ds, cfg), make_splits(ds, cfg)
    assert a == b
    tests = [set(t) for _, _, t in a]
    assert sum(len(t) for t in tests) == len(rows) and not (tests[0] & tests[1])
    for tr, va, te in a:
        assert not (set(tr) & set(te)) and not (set(va) & set(te)) and not (set(tr) & set(va))
        assert (0 in te) == (len(rows) - 1 in te)


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"text": "a", "label": "x"}\nnot json\n', r"d.jsonl, row 2: malformed row"),
        (
            '{"text": "a", "label": "x"}\n{"body": "b", "label": "y"}\n',
            r"row 2: no text in field 'text'.*body",
        ),
        ('{"text": "a", "label": "x"}\n{"text": "b"}\n', r"row 2: no label in field 'label'"),
        (
            '{"text": "a", "label": "x"}\n{"text": "b", "label": "zzz"}\n',
            r"row 2: unknown label 'zzz'.*Use one of: x, y",
        ),
    ],
)
def test_bad_rows_name_file_row_and_fix(tmp_path, content, problem):
    p = tmp_path / "d.jsonl"
    p.write_text(content)
    with pytest.raises(UserError, match=problem):
        load_dataset(p, FinetuneConfig(labels=["x", "y"] if "zzz" in content else None))


def test_csv_row_with_extra_column_is_malformed(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label\nhello,x\nbad,row,extra\n")
    with pytest.raises(UserError, match=r"d.csv, row 3: malformed"):
        load_dataset(p, FinetuneConfig())


def test_multi_label_and_search(tiny_model, tmp_path):
    data = _write(tmp_path / "d.jsonl", _docs(30))
    res = finetune(
        tiny_model,
        data,
        label_field="tags",
        multi_label=True,
        mode="head",
        search_trials=2,
        budget="60s",
        output=tmp_path / "out",
        overrides=["epochs=1"],
    )
    best = json.loads((res.output / "best_config.json").read_text())
    assert {"lr", "epochs", "batch_size", "weight_decay", "warmup"} <= set(best) and best["trials"] >= 1
    assert set(json.loads((res.output / "metrics.json").read_text())["labels"]) == {"exec", "rights", "x"}
    assert 0 <= res.table[0]["micro_f1"]["mean"] <= 1


def test_cli_finetune_bad_row_exits_2(tiny_model, tmp_path):
    from domainlm.cli import main

    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": "x"}\n{"txt": "b", "label": "y"}\n')
    with pytest.raises(SystemExit) as e:
        main(["finetune", str(tiny_model), str(p)])
    assert e.value.code == 2


def test_cli_finetune_prints_table_with_baselines(tiny_model, tmp_path):
    from click.testing import CliRunner

    from domainlm.cli import app

    data = _write(tmp_path / "d.jsonl", _docs(24))
    r = CliRunner().invoke(
        app,
        [
            "finetune",
            str(tiny_model),
            str(data),
            "--mode",
            "head",
            "--folds",
            "2",
            "-o",
            str(tmp_path / "out"),
            "--set",
            "epochs=1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "tfidf+lr" in r.output and "tfidf+svm" in r.output and "±" in r.output
    assert (tmp_path / "out" / "model" / "config.json").is_file()
    assert json.loads((tmp_path / "out" / "model" / "config.json").read_text())["id2label"] == {
        "0": "exec",
        "1": "rights",
    }
