"""The HTTP API as one FastAPI app: the routers of the model's task, error handlers, the guard in front.

    classifier   POST /predict, /embed, /v1/embeddings
    masked LM    POST /fill-mask, /embed, /v1/embeddings
    encoder      POST /embed, /v1/embeddings
    causal LM    POST /generate
    all          GET /health, /info, /metrics (Prometheus text), /docs (OpenAPI)
    the page     GET / (try the model in a browser), /card; POST /search when the run's corpus is found

Bad input is a 4xx with ``{"error", "error_type"}`` (TEI's shape), never a 500: request bodies are
validated by pydantic (422), lone surrogates are rejected before the tokenizer sees them, sizes are
capped in :mod:`.limits` and in :class:`.runtime.Runtime` (texts per request, characters per text).
The routes are in :mod:`.routes` (one router per task) and :mod:`.page`; what they share (engine,
limits, batchers) is a :class:`.runtime.Runtime` in ``app.state.runtime``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from domainlm.serve.engine import TASK_ROUTES, Engine, InputError
from domainlm.serve.limits import Guard, ServeConfig
from domainlm.serve.metrics import Metrics


def _handlers(app) -> None:
    """Every error is JSON in TEI's shape; only a bug is a 500."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        # never echo the input back: it may hold lone surrogates that cannot be encoded as UTF-8
        msgs = [
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        ]
        return JSONResponse({"error": "; ".join(msgs)[:2000], "error_type": "validation"}, status_code=422)

    @app.exception_handler(InputError)
    async def _input(request, exc: InputError):
        kind = "payload_too_large" if exc.status == 413 else "validation"
        return JSONResponse({"error": str(exc), "error_type": kind}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        return JSONResponse(
            {"error": str(exc.detail), "error_type": "http"},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(request, exc: Exception):
        return JSONResponse(
            {"error": f"internal error: {exc.__class__.__name__}", "error_type": "backend"}, status_code=500
        )


def _runtime(engine: Engine, cfg: ServeConfig):
    from domainlm.serve.page import page_facts
    from domainlm.serve.runtime import Runtime
    from domainlm.serve.search import CorpusIndex, corpus_of

    src = None
    if engine.source:
        from domainlm.export import resolve_source

        src = resolve_source(engine.source)
    corpus = (
        corpus_of(src.config if src else {}, cfg.corpus) if "/embed" in TASK_ROUTES[engine.task] else None
    )
    page, run_dir = page_facts(engine, src, corpus)
    search = CorpusIndex(corpus, cfg.search_max_docs) if corpus is not None else None
    return Runtime(engine=engine, cfg=cfg, metrics=Metrics(), search=search, page=page, run_dir=run_dir)


def create_app(engine: Engine, cfg: ServeConfig | None = None, api_key: str | None = None):
    """The ASGI app: the routers of ``engine.task`` and the page, wrapped in the :class:`Guard`."""
    from fastapi import FastAPI

    from domainlm import __version__
    from domainlm.serve import page, routes

    cfg = cfg or ServeConfig()
    rt = _runtime(engine, cfg)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await rt.close()

    app = FastAPI(
        title=f"domainlm: {engine.model_id}",
        version=__version__,
        lifespan=lifespan,
        description=f"{engine.task} model served by domainlm ({engine.backend} backend).",
    )
    app.state.runtime = rt
    _handlers(app)
    app.include_router(routes.common)
    for path in TASK_ROUTES[engine.task]:
        if path in routes.ROUTERS:  # /v1/embeddings comes with /embed's router
            app.include_router(routes.ROUTERS[path])
    if rt.search is not None:
        app.include_router(routes.search)
    app.include_router(page.router)

    guarded = Guard(app, cfg, rt.metrics, api_key)
    if cfg.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        guarded = CORSMiddleware(
            guarded,
            allow_origins=cfg.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
        )
    guarded.fastapi = app  # type: ignore[attr-defined]  # for tests and the OpenAPI schema
    guarded.metrics = rt.metrics  # type: ignore[attr-defined]
    return guarded
