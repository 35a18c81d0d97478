"""serve's page at /: served from the package with nothing external, its data behind the API's key and limits.

The browser test (slow) loads the page in headless Chromium; these check the same routes in-process.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from domainlm.corpus.documents import read_documents
from domainlm.serve import ServeConfig
from domainlm.serve.app import create_app
from domainlm.serve.engine import load_engine
from tests.tiny_models import make_mlm, mlm_dir  # noqa: F401  (fixture)

STATIC = Path(__file__).resolve().parents[1] / "src" / "domainlm" / "serve" / "static"
KEY = "page-test-key-1234"


@pytest.fixture(scope="module")
def run_dir(bert_tokenizer, corpus_dir, tmp_path_factory) -> Path:
    """A run folder as pretrain leaves it: model/ with its card, config.yaml naming the corpus, metrics."""
    run = tmp_path_factory.mktemp("page") / "run"
    make_mlm(bert_tokenizer, run / "model")
    (run / "model" / "README.md").write_text(
        "---\nlibrary_name: transformers\n---\n\n# tiny-run\n\nA **masked** model.\n\n## Validation\n- loss: 5.1\n"
    )
    shutil.copytree(bert_tokenizer, run / "tokenizer")
    (run / "config.yaml").write_text(f"format_version: 1\ncorpus: {corpus_dir}\n")
    summary = {"format_version": 1, "steps": 7, "validation": {"loss": 5.1, "accuracy": 0.2}}
    (run / "train_summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture(scope="module")
def engine(run_dir):
    return load_engine(run_dir)


def test_the_page_and_its_files_load_nothing_from_elsewhere(engine):
    with TestClient(create_app(engine)) as c:
        page = c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for ref in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert ref.startswith("/static/"), ref
            assert c.get(ref).status_code == 200, ref
        assert c.get("/static/nothing.js").status_code == 404
    for f in STATIC.iterdir():
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), f.name  # no remote URL at all
        assert "innerHTML" not in text, f.name  # model and corpus text go in as text only


def test_card_has_the_model_card_the_runs_metrics_and_a_corpus_example(engine, corpus_dir):
    with TestClient(create_app(engine)) as c:
        info = c.get("/card").json()
    assert info["task"] == "fill-mask" and info["search"] is True
    assert info["card"].startswith("\n# tiny-run") and "library_name" not in info["card"]
    assert info["metrics"]["train_summary.json"] == {
        "format_version": 1,
        "steps": 7,
        "validation.loss": 5.1,
        "validation.accuracy": 0.2,
    }
    assert info["example"].count("[MASK]") == 1
    held_out = " ".join(d["text"] for s in ("test", "validation") for d in read_documents(corpus_dir, s))
    assert info["example"].replace("[MASK]", "").split()[0] in held_out


def test_search_finds_a_corpus_document_from_its_own_text(engine, corpus_dir):
    docs = list(read_documents(corpus_dir))
    target = docs[5]
    with TestClient(create_app(engine, ServeConfig(search_max_docs=len(docs)))) as c:
        assert "/search" in c.get("/info").json()["routes"]
        hits = c.post("/search", json={"inputs": target["text"][:400], "top_k": 3}).json()
        assert len(hits) == 3 and hits[0]["id"] == target["id"]
        assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
        assert target["text"].startswith(hits[0]["text"])
        assert c.post("/search", json={"inputs": "x" * 30_000}).status_code == 413  # the API's max_chars
        assert c.post("/search", json={"inputs": "x", "top_k": 0}).status_code == 422


def test_search_index_holds_only_search_max_docs_documents(engine, corpus_dir):
    first = [d["id"] for d in read_documents(corpus_dir)][:4]
    with TestClient(create_app(engine, ServeConfig(search_max_docs=4))) as c:
        hits = c.post("/search", json={"inputs": "The President", "top_k": 50}).json()
    assert sorted(h["id"] for h in hits) == sorted(first)


def test_the_page_data_needs_the_api_key_and_the_page_shell_does_not(engine):
    with TestClient(create_app(engine, api_key=KEY)) as c:
        assert c.get("/").status_code == 200 and c.get("/static/page.js").status_code == 200
        assert c.get("/card").status_code == 401
        assert c.post("/search", json={"inputs": "President"}).status_code == 401
        auth = {"Authorization": f"Bearer {KEY}"}
        assert c.get("/card", headers=auth).json()["model_id"] == "run"
        assert c.post("/search", json={"inputs": "President"}, headers=auth).status_code == 200


def test_a_model_without_a_corpus_has_no_search(mlm_dir):  # noqa: F811
    with TestClient(create_app(load_engine(mlm_dir))) as c:
        info = c.get("/card").json()
        assert info["search"] is False and info["metrics"] == {}
        assert c.post("/search", json={"inputs": "x"}).status_code == 404
        assert "/search" not in c.get("/openapi.json").json()["paths"]


def test_a_wrong_serve_corpus_is_a_user_error(engine, tmp_path):
    from domainlm.errors import UserError

    with pytest.raises(UserError, match="serve.corpus"):
        create_app(engine, ServeConfig(corpus=str(tmp_path)))
