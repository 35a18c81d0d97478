"""serve: routes by task, response shapes, micro-batching, and one test per limit (in-process ASGI)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from domainlm.errors import UserError
from domainlm.serve import ServeConfig, build_app, is_loopback, read_api_key
from domainlm.serve.app import create_app
from domainlm.serve.engine import load_engine
from tests.tiny_models import clf_dir, gpt_dir, labelled, mlm_dir  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def clf_engine(clf_dir):  # noqa: F811
    return load_engine(clf_dir)


@pytest.fixture(scope="module")
def clf(clf_engine):
    with TestClient(create_app(clf_engine, ServeConfig(max_texts=4, max_chars=200))) as c:
        yield c


class Slow:
    """An engine whose forward passes take ``delay`` seconds longer (to make overload and timeouts)."""

    def __init__(self, engine, delay: float):
        self._e, self.delay = engine, delay

    def __getattr__(self, name):
        return getattr(self._e, name)

    def embed_batch(self, batch):
        time.sleep(self.delay)
        return self._e.embed_batch(batch)


def run_concurrently(app, requests: list[tuple[str, dict]], headers=None) -> list[httpx.Response]:
    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as c:
            return await asyncio.gather(*(c.post(path, json=body) for path, body in requests))

    return asyncio.run(main())


# ----------------------------------------------------------------------------------------------------
# routes and shapes


def test_classifier_routes_and_openapi(clf):
    paths = set(clf.get("/openapi.json").json()["paths"])
    assert {"/predict", "/embed", "/v1/embeddings", "/health", "/info", "/metrics"} <= paths
    assert "/generate" not in paths and "/fill-mask" not in paths
    assert clf.post("/generate", json={"inputs": "x"}).status_code == 404
    assert clf.get("/health").json() == {"status": "ok"}
    info = clf.get("/info").json()
    assert info["task"] == "classify" and info["labels"] == ["other", "parliament"]
    assert clf.get("/docs").status_code == 200


def test_predict_shapes_follow_tei(clf):
    one = clf.post("/predict", json={"inputs": "Parliament may by law regulate"}).json()
    assert {d["label"] for d in one} == {"other", "parliament"}
    assert abs(sum(d["score"] for d in one) - 1) < 1e-6 and one[0]["score"] >= one[1]["score"]
    many = clf.post("/predict", json={"inputs": ["a text", "another"], "raw_scores": True}).json()
    assert len(many) == 2 and all(len(x) == 2 for x in many)


def test_embed_and_openai_embeddings(clf):
    vecs = clf.post("/embed", json={"inputs": ["hello Court", "the State"]}).json()
    assert len(vecs) == 2 and abs(np.linalg.norm(vecs[0]) - 1) < 1e-5
    raw = clf.post("/embed", json={"inputs": "hello Court", "normalize": False}).json()
    np.testing.assert_allclose(np.asarray(raw[0]) / np.linalg.norm(raw[0]), vecs[0], atol=1e-5)
    oa = clf.post("/v1/embeddings", json={"input": ["hello Court"], "model": "whatever"}).json()
    assert oa["object"] == "list" and oa["data"][0]["index"] == 0 and oa["usage"]["prompt_tokens"] > 0
    np.testing.assert_allclose(oa["data"][0]["embedding"], vecs[0], atol=1e-5)
    b64 = clf.post("/v1/embeddings", json={"input": "hello Court", "encoding_format": "base64"}).json()
    dec = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(dec, vecs[0], atol=1e-5)


def test_fill_mask_route(mlm_dir):  # noqa: F811
    with TestClient(create_app(load_engine(mlm_dir))) as c:
        r = c.post("/fill-mask", json={"inputs": "The [MASK] shall be elected.", "top_k": 3})
        assert r.status_code == 200
        items = r.json()
        assert len(items) == 3 and items[0]["score"] >= items[-1]["score"]
        assert items[0]["sequence"] == "The " + items[0]["token_str"] + " shall be elected."
        assert c.post("/fill-mask", json={"inputs": "no mask here"}).status_code == 422
        assert c.post("/embed", json={"inputs": "x"}).status_code == 200


def test_generate_route_greedy_seeded_and_capped(gpt_dir):  # noqa: F811
    with TestClient(create_app(load_engine(gpt_dir), ServeConfig(max_new_tokens=8))) as c:
        body = {"inputs": "The President", "parameters": {"max_new_tokens": 5}}
        a, b = c.post("/generate", json=body).json(), c.post("/generate", json=body).json()
        assert a == b and isinstance(a["generated_text"], str)
        s = {"inputs": "The President", "parameters": {"max_new_tokens": 5, "temperature": 1.0, "seed": 3}}
        assert c.post("/generate", json=s).json() == c.post("/generate", json=s).json()
        over = c.post("/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 9}})
        assert over.status_code == 422 and "cap" in over.json()["error"]
        assert c.post("/embed", json={"inputs": "x"}).status_code == 404


def test_onnx_backend_serves_the_same_answers(clf_dir, clf, tmp_path):  # noqa: F811
    from domainlm.export import export

    export(clf_dir, "onnx", tmp_path / "onnx")
    with TestClient(create_app(load_engine(tmp_path / "onnx"))) as c:
        assert c.get("/info").json()["backend"] == "onnx"
        text = {"inputs": "Parliament may by law regulate the Court"}
        got, want = c.post("/predict", json=text).json(), clf.post("/predict", json=text).json()
        assert got[0]["label"] == want[0]["label"] and abs(got[0]["score"] - want[0]["score"]) < 1e-4


def test_micro_batching_joins_concurrent_requests_without_changing_results(clf_engine):
    app = create_app(clf_engine, ServeConfig(batch_wait_ms=200, max_batch=32))
    texts = [f"Article {i}: the Court may regulate the State" + " and the Union" * i for i in range(8)]
    res = run_concurrently(app, [("/embed", {"inputs": t}) for t in texts])
    assert all(r.status_code == 200 for r in res)
    assert max(app.metrics.batch_size.counts) >= 1
    sizes = app.metrics.batch_size
    assert sizes.n < len(texts), "concurrent requests should share forward passes"
    alone = TestClient(create_app(clf_engine))
    for t, r in zip(texts[:3], res[:3], strict=False):
        np.testing.assert_allclose(r.json()[0], alone.post("/embed", json={"inputs": t}).json()[0], atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# limits: one test each


def test_body_size_limit_413(clf_engine):
    c = TestClient(create_app(clf_engine, ServeConfig(max_body_bytes=2048)))
    r = c.post("/embed", json={"inputs": "x" * 5000})
    assert r.status_code == 413 and r.json()["error_type"] == "payload_too_large"

    def chunks():  # no Content-Length: the streamed size is counted
        for _ in range(10):
            yield b" " * 500

    r = c.post("/embed", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_texts_per_request_limit_413(clf):
    assert clf.post("/embed", json={"inputs": ["a"] * 5}).status_code == 413
    assert clf.post("/embed", json={"inputs": ["a"] * 4}).status_code == 200
    assert clf.post("/embed", json={"inputs": []}).status_code == 422


def test_chars_per_text_413_or_truncated(clf):
    long = "Parliament " * 30  # 330 characters > max_chars 200
    r = clf.post("/predict", json={"inputs": long})
    assert r.status_code == 413 and "characters" in r.json()["error"]
    assert clf.post("/predict", json={"inputs": long, "truncate": True}).status_code == 200


def test_tokens_beyond_model_length_413_or_truncated(clf_engine):
    c = TestClient(create_app(clf_engine))  # the tiny model has 128 positions
    long = " ".join(["Court"] * 300)
    r = c.post("/embed", json={"inputs": long})
    assert r.status_code == 413 and "tokens" in r.json()["error"]
    assert c.post("/embed", json={"inputs": long, "truncate": True}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": ',  # invalid JSON
        b'{"inputs": "caf\xe9"}',  # Latin-1 byte: invalid UTF-8
        b'{"inputs": "\\ud800 alone"}',  # lone surrogate escape
        b'{"inputs": ["ok", "\\udfff"]}',
        b'{"inputs": 5}',
        b"[]",
        b"\xff\xfe\x00",
    ],
)
def test_bad_input_is_422_never_500(clf, body):
    r = clf.post("/embed", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error_type"] == "validation"


def test_overload_answers_429_with_retry_after(clf_engine):
    app = create_app(Slow(clf_engine, 0.5), ServeConfig(max_concurrency=1, max_queue=1, batch_wait_ms=0))
    res = run_concurrently(app, [("/embed", {"inputs": f"text {i}"}) for i in range(5)])
    codes = sorted(r.status_code for r in res)
    assert codes.count(200) >= 1 and 429 in codes and set(codes) <= {200, 429}, codes
    refused = next(r for r in res if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert "overloaded" in app.metrics.render()


def test_request_timeout_answers_503(clf_engine):
    app = create_app(Slow(clf_engine, 1.5), ServeConfig(request_timeout_s=0.3, batch_wait_ms=0))
    t0 = time.perf_counter()
    (r,) = run_concurrently(app, [("/embed", {"inputs": "slow"})])
    assert r.status_code == 503 and r.json()["error_type"] == "timeout"
    assert time.perf_counter() - t0 < 1.4


def test_api_key_bearer(clf_engine, tmp_path):
    key = tmp_path / "key"
    key.write_text("s3cret-token-123\n")
    app, _, notes = build_app_from_engine(clf_engine, ServeConfig(api_key_file=str(key)))
    c = TestClient(app)
    assert c.post("/embed", json={"inputs": "x"}).status_code == 401
    bad = c.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    ok = c.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer s3cret-token-123"})
    assert ok.status_code == 200
    assert c.get("/metrics").status_code == 401
    assert c.get("/health").status_code == 200  # liveness probes stay open


def build_app_from_engine(engine, cfg):
    return create_app(engine, cfg, read_api_key(cfg.api_key_file)), engine, []


def test_cors_off_by_default_and_allow_list(clf_engine):
    origin = {"Origin": "https://app.example"}
    c = TestClient(create_app(clf_engine))
    assert "access-control-allow-origin" not in c.get("/health", headers=origin).headers
    c2 = TestClient(create_app(clf_engine, ServeConfig(cors_origins=["https://app.example"])))
    assert c2.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://app.example"
    other = c2.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_binding_beyond_loopback_without_key_warns(clf_dir, tmp_path):  # noqa: F811
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    _, _, notes = build_app(clf_dir, ServeConfig(host="0.0.0.0"))
    assert notes and "API key" in notes[0]
    key = tmp_path / "k"
    key.write_text("long-enough-key")
    assert build_app(clf_dir, ServeConfig(host="0.0.0.0", api_key_file=str(key)))[2] == []
    _, _, quiet = build_app(clf_dir, ServeConfig())
    assert quiet == []
    key.write_text("short")
    with pytest.raises(UserError, match="shorter than 8"):
        read_api_key(key)


def test_metrics_are_prometheus_text(clf):
    clf.post("/embed", json={"inputs": "x"})
    text = clf.get("/metrics").text
    assert "# TYPE domainlm_requests_total counter" in text
    assert 'domainlm_requests_total{route="/embed",code="200"}' in text
    assert "domainlm_request_duration_seconds_bucket" in text and "domainlm_in_flight 0" in text
    for line in text.splitlines():  # every sample line is `name{labels} number`
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_serve_yaml_config_is_validated(tmp_path, clf_dir):  # noqa: F811
    from domainlm.serve import serve

    bad = tmp_path / "serve.yaml"
    bad.write_text(json.dumps({"serve": {"max_textz": 3}}))
    with pytest.raises(UserError, match="max_textz"):
        serve(clf_dir, config=bad)


def test_batch_chunks_sort_by_length_and_bound_padding():
    from domainlm.serve.batching import MicroBatcher

    lengths = [10, 50, 12, 11, 60, 5, 300]
    chunks = MicroBatcher(lambda rows: rows, None, max_batch=3, max_batch_tokens=100).chunks(lengths)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    for c in chunks:
        assert len(c) <= 3
        assert len(c) == 1 or len(c) * max(lengths[i] for i in c) <= 100
    assert [lengths[i] for i in chunks[0]] == [5, 10, 11]  # shortest together: little padding
    for c in chunks:  # and no chunk pads a short row to a much longer one
        assert max(lengths[i] for i in c) <= 1.1 * min(lengths[i] for i in c) + 8


def test_onnx_backend_fill_mask_and_generate_match_torch(mlm_dir, gpt_dir, tmp_path):  # noqa: F811
    from domainlm.export import export

    export(mlm_dir, "onnx", tmp_path / "m")
    export(gpt_dir, "onnx", tmp_path / "g")
    body = {"inputs": "The [MASK] shall be elected.", "top_k": 3}
    with (
        TestClient(create_app(load_engine(mlm_dir))) as t,
        TestClient(create_app(load_engine(tmp_path / "m"))) as o,
    ):
        want, got = t.post("/fill-mask", json=body).json(), o.post("/fill-mask", json=body).json()
        assert [x["token"] for x in got] == [x["token"] for x in want]
    gen = {"inputs": "The President", "parameters": {"max_new_tokens": 6}}
    with (
        TestClient(create_app(load_engine(gpt_dir))) as t,
        TestClient(create_app(load_engine(tmp_path / "g"))) as o,
    ):
        assert o.get("/info").json()["backend"] == "onnx"
        assert o.post("/generate", json=gen).json() == t.post("/generate", json=gen).json()
