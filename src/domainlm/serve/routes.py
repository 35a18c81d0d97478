"""The API's routes, one FastAPI router per task; each handler takes the app's Runtime as a dependency.

every model   GET /health, /info, /metrics
encoders      POST /embed, /v1/embeddings        (text-embeddings-inference / OpenAI shapes)
classifier    POST /predict
masked LM     POST /fill-mask
causal LM     POST /generate
corpus known  POST /search                        (similarity search over the run's corpus)
"""

from __future__ import annotations

import asyncio
import base64
import math

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from domainlm import __version__
from domainlm.serve.engine import InputError
from domainlm.serve.runtime import Runtime, runtime
from domainlm.serve.schemas import (
    ERRORS,
    EmbeddingItem,
    EmbedRequest,
    FillMaskItem,
    FillMaskRequest,
    GenerateRequest,
    GenerateResponse,
    OpenAIEmbedRequest,
    OpenAIEmbedResponse,
    PredictRequest,
    Score,
    SearchHit,
    SearchRequest,
    Usage,
)

RT = Depends(runtime)
LIMITS = (
    "max_body_bytes",
    "max_texts",
    "max_chars",
    "max_concurrency",
    "max_queue",
    "request_timeout_s",
    "max_batch",
    "max_new_tokens",
)

common = APIRouter()


@common.get("/health", summary="liveness: 200 when the model is loaded")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@common.get("/info", summary="the model, its task, backend and the server's limits")
async def info(rt: Runtime = RT) -> dict:
    out = {**rt.engine.info(), "version": __version__, "limits": {k: getattr(rt.cfg, k) for k in LIMITS}}
    if rt.search is not None:
        out["routes"] = [*out["routes"], "/search"]
    return out


@common.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def prometheus(rt: Runtime = RT):
    return PlainTextResponse(rt.metrics.render(), media_type="text/plain; version=0.0.4")


embed = APIRouter()


@embed.post("/embed", responses=ERRORS, summary="mean-pooled embeddings (text-embeddings-inference)")
async def embed_texts(req: EmbedRequest, rt: Runtime = RT) -> list[list[float]]:
    vecs, _ = await rt.embeddings(rt.texts_of(req.inputs, req.truncate), req.truncate, req.normalize)
    return [v.tolist() for v in vecs]


@embed.post("/v1/embeddings", responses=ERRORS, summary="embeddings (OpenAI shape)")
async def openai_embed(req: OpenAIEmbedRequest, rt: Runtime = RT) -> OpenAIEmbedResponse:
    vecs, n_tokens = await rt.embeddings(rt.texts_of(req.input, False), False, True)
    data = [
        EmbeddingItem(
            index=i,
            embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
            if req.encoding_format == "base64"
            else v.tolist(),
        )
        for i, v in enumerate(vecs)
    ]
    usage = Usage(prompt_tokens=n_tokens, total_tokens=n_tokens)
    return OpenAIEmbedResponse(data=data, model=rt.engine.model_id, usage=usage)


predict = APIRouter()


@predict.post("/predict", responses=ERRORS, summary="class scores (text-embeddings-inference shape)")
async def predict_labels(req: PredictRequest, rt: Runtime = RT) -> list[Score] | list[list[Score]]:
    texts = rt.texts_of(req.inputs, req.truncate)
    logits = await rt.classify_b.submit(await rt.encode(texts, req.truncate))
    out = []
    for z in logits:
        z = z.astype(np.float64)
        s = z if req.raw_scores else np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        pairs = sorted(zip(rt.engine.labels, s.tolist(), strict=True), key=lambda p: -p[1])
        out.append([Score(label=lab, score=float(v) if math.isfinite(v) else 0.0) for lab, v in pairs])
    return out[0] if isinstance(req.inputs, str) else out


fill_mask = APIRouter()


@fill_mask.post("/fill-mask", responses=ERRORS, summary="top-k fillers of the mask token")
async def fill_masks(req: FillMaskRequest, rt: Runtime = RT) -> list[FillMaskItem] | list[list[FillMaskItem]]:
    tok = rt.engine.tok
    texts = rt.texts_of(req.inputs, req.truncate)
    for i, t in enumerate(texts):
        if t.count(tok.mask_token) != 1:
            raise InputError(f"text {i} must contain the mask token {tok.mask_token} exactly once")
    rows = await rt.encode(texts, req.truncate)
    for i, r in enumerate(rows):
        if tok.mask_token_id not in r:
            raise InputError(f"text {i}: the mask token was cut off by truncation")
    logits = await rt.fill_b.submit(rows)
    out = []
    for t, z in zip(texts, logits, strict=True):
        z = z.astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        items = []
        for i in np.argsort(-p)[: req.top_k]:
            word = tok.decode([int(i)]).strip()
            seq = t.replace(tok.mask_token, word, 1)
            items.append(FillMaskItem(score=float(p[i]), token=int(i), token_str=word, sequence=seq))
        out.append(items)
    return out[0] if isinstance(req.inputs, str) else out


generate = APIRouter()


@generate.post("/generate", responses=ERRORS, summary="continue a prompt (causal LM)")
async def generate_text(req: GenerateRequest, rt: Runtime = RT) -> GenerateResponse:
    p = req.parameters
    if p.max_new_tokens > rt.cfg.max_new_tokens:
        raise InputError(
            f"max_new_tokens {p.max_new_tokens} is above this server's cap {rt.cfg.max_new_tokens}"
        )
    (text,) = rt.texts_of(req.inputs, req.truncate)
    (row,) = await rt.encode([text], req.truncate)
    if not row:
        raise InputError("inputs is empty: send a prompt")
    gone = asyncio.Event()  # set when the request times out, so generation stops early
    args = (row, p.max_new_tokens, p.temperature, p.top_k, p.seed, gone.is_set)
    fut = asyncio.get_running_loop().run_in_executor(rt.executor, rt.engine.generate, *args)
    try:
        new = await fut
    except asyncio.CancelledError:
        gone.set()
        raise
    return GenerateResponse(generated_text=rt.engine.tok.decode(new, skip_special_tokens=True))


search = APIRouter()


@search.post("/search", responses=ERRORS, summary="the run's corpus documents nearest to a query")
async def search_corpus(req: SearchRequest, rt: Runtime = RT) -> list[SearchHit]:
    (text,) = rt.texts_of(req.inputs, req.truncate)
    (query,), _ = await rt.embeddings([text], req.truncate, True)
    return [SearchHit(**hit) for hit in await rt.search.query(rt, query, req.top_k)]


# route path -> the router that answers it (the engine's TASK_ROUTES say which paths a task has)
ROUTERS: dict[str, APIRouter] = {
    "/embed": embed,
    "/predict": predict,
    "/fill-mask": fill_mask,
    "/generate": generate,
}
