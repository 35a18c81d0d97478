"""The HTTP API: FastAPI routes chosen by the model's task, in text-embeddings-inference's shapes.

    classifier   POST /predict, /embed, /v1/embeddings
    masked LM    POST /fill-mask, /embed, /v1/embeddings
    encoder      POST /embed, /v1/embeddings
    causal LM    POST /generate
    all          GET /health, /info, /metrics (Prometheus text), /docs (OpenAPI)

Bad input is a 4xx with ``{"error", "error_type"}`` (TEI's shape), never a 500: request bodies are
validated by pydantic (422), lone surrogates are rejected before the tokenizer sees them, sizes are
capped in :mod:`.limits` and here (texts per request, characters per text).
"""

from __future__ import annotations

import asyncio
import base64
import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from domainlm.serve.batching import MicroBatcher
from domainlm.serve.engine import TASK_ROUTES, Engine, InputError
from domainlm.serve.limits import Guard, ServeConfig
from domainlm.serve.metrics import Metrics

Texts = str | list[str]


def _valid_unicode(v):
    """Reject lone surrogates (valid in a JSON escape, not in UTF-8): the tokenizer cannot take them."""
    for s in [v] if isinstance(v, str) else v:
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text contains a lone surrogate (not valid Unicode)") from None
    return v


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients of TEI/OpenAI send fields we do not use


class EmbedRequest(_Req):
    inputs: Texts = Field(description="a text or a list of texts")
    normalize: bool = Field(True, description="L2-normalise the embeddings")
    truncate: bool = Field(False, description="cut over-long texts instead of refusing them (413)")
    _unicode = field_validator("inputs")(_valid_unicode)


class OpenAIEmbedRequest(_Req):
    input: Texts = Field(description="a text or a list of texts")
    model: str | None = Field(None, description="ignored: the server holds one model")
    encoding_format: Literal["float", "base64"] = "float"
    _unicode = field_validator("input")(_valid_unicode)


class PredictRequest(_Req):
    inputs: Texts
    raw_scores: bool = Field(False, description="logits instead of softmax probabilities")
    truncate: bool = False
    _unicode = field_validator("inputs")(_valid_unicode)


class FillMaskRequest(_Req):
    inputs: Texts = Field(description="text(s) with exactly one mask token each")
    top_k: int = Field(5, ge=1, le=100)
    truncate: bool = False
    _unicode = field_validator("inputs")(_valid_unicode)


class GenerateParameters(_Req):
    max_new_tokens: int = Field(32, ge=1, description="capped by the server's max_new_tokens")
    temperature: float = Field(0.0, ge=0.0, le=100.0, description="0: greedy")
    top_k: int = Field(0, ge=0, le=100_000, description="sample among the k likeliest (0: all)")
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class GenerateRequest(_Req):
    inputs: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    truncate: bool = False
    _unicode = field_validator("inputs")(_valid_unicode)


class Score(BaseModel):
    label: str
    score: float


class FillMaskItem(BaseModel):
    score: float
    token: int
    token_str: str
    sequence: str


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbedResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class GenerateResponse(BaseModel):
    generated_text: str


class ErrorResponse(BaseModel):
    error: str
    error_type: str


ERRORS = {c: {"model": ErrorResponse} for c in (401, 413, 422, 429, 503)}


def create_app(engine: Engine, cfg: ServeConfig | None = None, api_key: str | None = None):
    """The ASGI app: FastAPI routes for ``engine.task`` wrapped in the :class:`Guard`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from domainlm import __version__

    cfg = cfg or ServeConfig()
    metrics = Metrics()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="domainlm-model")
    tok_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="domainlm-tokenize")
    wait_s = cfg.batch_wait_ms / 1000

    def batcher(fn):
        return MicroBatcher(
            fn, executor, cfg.max_batch, wait_s, metrics.batch_size.observe, cfg.max_batch_tokens
        )

    embed_b = batcher(engine.embed_batch)
    classify_b = batcher(engine.classify_batch)
    fill_b = batcher(engine.fill_mask_batch)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        for b in (embed_b, classify_b, fill_b):
            await b.close()
        executor.shutdown(wait=False, cancel_futures=True)
        tok_executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title=f"domainlm: {engine.model_id}",
        version=__version__,
        lifespan=lifespan,
        description=f"{engine.task} model served by domainlm ({engine.backend} backend).",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # never echo the input back: it may hold lone surrogates that cannot be encoded as UTF-8
        msgs = [
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        ]
        return JSONResponse({"error": "; ".join(msgs)[:2000], "error_type": "validation"}, status_code=422)

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError):
        kind = "payload_too_large" if exc.status == 413 else "validation"
        return JSONResponse({"error": str(exc), "error_type": kind}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return JSONResponse(
            {"error": str(exc.detail), "error_type": "http"},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        return JSONResponse(
            {"error": f"internal error: {exc.__class__.__name__}", "error_type": "backend"}, status_code=500
        )

    def texts_of(inputs: Texts, truncate: bool) -> list[str]:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not texts:
            raise InputError("inputs is empty: send at least one text")
        if len(texts) > cfg.max_texts:
            raise InputError(f"{len(texts)} texts in one request, more than {cfg.max_texts}", 413)
        out = []
        for i, t in enumerate(texts):
            if len(t) > cfg.max_chars:
                if not truncate:
                    raise InputError(
                        f"text {i} has {len(t)} characters, more than {cfg.max_chars}; "
                        "send shorter text or set truncate",
                        413,
                    )
                t = t[: cfg.max_chars]
            out.append(t)
        return out

    async def encode(texts: list[str], truncate: bool) -> list[list[int]]:
        # off the event loop (64 texts x 20,000 characters take a while; /health must stay responsive),
        # on one thread: a fast tokenizer's truncation/padding state is shared and not thread-safe
        return await asyncio.get_running_loop().run_in_executor(tok_executor, engine.encode, texts, truncate)

    async def embeddings(texts: list[str], truncate: bool, normalize: bool) -> tuple[list[np.ndarray], int]:
        rows = await encode(texts, truncate)
        vecs = await embed_b.submit(rows)
        if normalize:
            vecs = [v / max(float(np.linalg.norm(v)), 1e-12) for v in vecs]
        return vecs, sum(len(r) for r in rows)

    @app.get("/health", summary="liveness: 200 when the model is loaded")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info", summary="the model, its task, backend and the server's limits")
    async def info() -> dict:
        return {
            **engine.info(),
            "version": __version__,
            "limits": {
                k: getattr(cfg, k)
                for k in (
                    "max_body_bytes",
                    "max_texts",
                    "max_chars",
                    "max_concurrency",
                    "max_queue",
                    "request_timeout_s",
                    "max_batch",
                    "max_new_tokens",
                )
            },
        }

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    routes = TASK_ROUTES[engine.task]
    if "/embed" in routes:

        @app.post("/embed", responses=ERRORS, summary="mean-pooled embeddings (text-embeddings-inference)")
        async def embed(req: EmbedRequest) -> list[list[float]]:
            vecs, _ = await embeddings(texts_of(req.inputs, req.truncate), req.truncate, req.normalize)
            return [v.tolist() for v in vecs]

        @app.post("/v1/embeddings", responses=ERRORS, summary="embeddings (OpenAI shape)")
        async def openai_embed(req: OpenAIEmbedRequest) -> OpenAIEmbedResponse:
            vecs, n_tokens = await embeddings(texts_of(req.input, False), False, True)
            data = [
                EmbeddingItem(
                    index=i,
                    embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
                    if req.encoding_format == "base64"
                    else v.tolist(),
                )
                for i, v in enumerate(vecs)
            ]
            return OpenAIEmbedResponse(
                data=data, model=engine.model_id, usage=Usage(prompt_tokens=n_tokens, total_tokens=n_tokens)
            )

    if "/predict" in routes:

        @app.post("/predict", responses=ERRORS, summary="class scores (text-embeddings-inference shape)")
        async def predict(req: PredictRequest) -> list[Score] | list[list[Score]]:
            texts = texts_of(req.inputs, req.truncate)
            logits = await classify_b.submit(await encode(texts, req.truncate))
            out = []
            for z in logits:
                z = z.astype(np.float64)
                s = z if req.raw_scores else np.exp(z - z.max()) / np.exp(z - z.max()).sum()
                pairs = sorted(zip(engine.labels, s.tolist(), strict=True), key=lambda p: -p[1])
                out.append(
                    [Score(label=lab, score=float(v) if math.isfinite(v) else 0.0) for lab, v in pairs]
                )
            return out[0] if isinstance(req.inputs, str) else out

    if "/fill-mask" in routes:

        @app.post("/fill-mask", responses=ERRORS, summary="top-k fillers of the mask token")
        async def fill_mask(req: FillMaskRequest) -> list[FillMaskItem] | list[list[FillMaskItem]]:
            texts = texts_of(req.inputs, req.truncate)
            mask = engine.tok.mask_token
            for i, t in enumerate(texts):
                if t.count(mask) != 1:
                    raise InputError(f"text {i} must contain the mask token {mask} exactly once")
            rows = await encode(texts, req.truncate)
            for i, r in enumerate(rows):
                if engine.tok.mask_token_id not in r:
                    raise InputError(f"text {i}: the mask token was cut off by truncation")
            logits = await fill_b.submit(rows)
            out = []
            for t, z in zip(texts, logits, strict=True):
                z = z.astype(np.float64)
                p = np.exp(z - z.max())
                p /= p.sum()
                top = np.argsort(-p)[: req.top_k]
                items = []
                for i in top:
                    word = engine.tok.decode([int(i)]).strip()
                    items.append(
                        FillMaskItem(
                            score=float(p[i]), token=int(i), token_str=word, sequence=t.replace(mask, word, 1)
                        )
                    )
                out.append(items)
            return out[0] if isinstance(req.inputs, str) else out

    if "/generate" in routes:

        @app.post("/generate", responses=ERRORS, summary="continue a prompt (causal LM)")
        async def generate(req: GenerateRequest) -> GenerateResponse:
            p = req.parameters
            if p.max_new_tokens > cfg.max_new_tokens:
                raise InputError(
                    f"max_new_tokens {p.max_new_tokens} is above this server's cap {cfg.max_new_tokens}"
                )
            (text,) = texts_of(req.inputs, req.truncate)
            (row,) = await encode([text], req.truncate)
            if not row:
                raise InputError("inputs is empty: send a prompt")
            gone = asyncio.Event()  # set when the request times out, so generation stops early
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(
                executor, engine.generate, row, p.max_new_tokens, p.temperature, p.top_k, p.seed, gone.is_set
            )
            try:
                new = await fut
            except asyncio.CancelledError:
                gone.set()
                raise
            return GenerateResponse(generated_text=engine.tok.decode(new, skip_special_tokens=True))

    guarded = Guard(app, cfg, metrics, api_key)
    if cfg.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        guarded = CORSMiddleware(
            guarded,
            allow_origins=cfg.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
        )
    guarded.fastapi = app  # type: ignore[attr-defined]  # for tests and the OpenAPI schema
    guarded.metrics = metrics  # type: ignore[attr-defined]
    return guarded
