"""Server settings and the guard in front of the app: API key, body size, UTF-8, overload, timeout.

The guard is a plain ASGI middleware, so every refusal happens before FastAPI parses anything:

1. API key (when configured): ``Authorization: Bearer KEY`` compared with ``secrets.compare_digest``
   -> 401. /health, /docs and /openapi.json stay open so orchestrators and browsers can reach them.
2. overload: when ``max_concurrency`` requests are processing and ``max_queue`` more are waiting -> 429
   with ``Retry-After`` (before the body is read, so refusing costs nothing).
3. body: a declared or streamed body over ``max_body_bytes`` -> 413; bytes that are not UTF-8 -> 422.
4. timeout: a request not answered within ``request_timeout_s`` (waiting included) -> 503.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import Field

from domainlm.config import Section
from domainlm.serve.metrics import Metrics

# the page's shell (/, its script and style) is open like /docs: it holds nothing of the model, and its
# requests (/card, /fill-mask, ...) carry the key the person types in
OPEN_PATHS = frozenset(
    {
        "/health",
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
        "/redoc",
        "/",
        "/static/page.js",
        "/static/page.css",
    }
)
# routes that run the model: counted against the concurrency limit and the timeout
MODEL_PATHS = frozenset({"/predict", "/embed", "/v1/embeddings", "/fill-mask", "/generate", "/search"})
# routes with their own label in the request metrics (anything else is "other")
LABELLED_PATHS = MODEL_PATHS | OPEN_PATHS | {"/info", "/metrics", "/card"}


class ServeConfig(Section):
    """`domainlm serve` settings (YAML section or --set serve.KEY=VALUE); they change no model output."""

    host: str = Field("127.0.0.1", description="address to bind; loopback unless you mean to expose it")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    onnx: bool = Field(False, description="serve the ONNX export (RUN/export/onnx-int8 or onnx)")
    api_key_file: str | None = Field(None, description="file holding the API key required as a Bearer token")
    cors_origins: list[str] = Field(default_factory=list, description="CORS allow-list; empty: CORS off")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body (413 above)")
    max_texts: int = Field(64, ge=1, description="most texts in one request (413 above)")
    max_chars: int = Field(
        20_000,
        ge=1,
        description="most characters per text, checked before tokenising "
        "(413 above, or cut when the request sets truncate)",
    )
    max_concurrency: int = Field(32, ge=1, description="requests processed at once (micro-batched together)")
    max_queue: int = Field(64, ge=0, description="requests waiting beyond max_concurrency (429 above)")
    request_timeout_s: float = Field(30.0, gt=0, description="answer 503 after this long, waiting included")
    max_batch: int = Field(32, ge=1, description="most texts in one forward pass")
    max_batch_tokens: int = Field(4096, ge=1, description="most padded tokens in one forward pass")
    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        description="extra wait for more requests to join a batch "
        "(0: batch only what queued while the model was busy)",
    )
    max_new_tokens: int = Field(128, ge=1, description="cap on /generate max_new_tokens")
    threads: int | None = Field(None, ge=1, description="CPU threads for the model (default: all cores)")
    graceful_timeout_s: int = Field(
        30, ge=1, description="on SIGTERM, how long in-flight requests may finish"
    )
    corpus: str | None = Field(
        None, description="corpus folder the page's similarity search uses (default: the run's corpus)"
    )
    search_max_docs: int = Field(
        2000, ge=1, description="documents of the corpus embedded for the page's search (on its first query)"
    )


def json_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None):
    """(status, headers, body) of an error in text-embeddings-inference's shape {error, error_type}."""
    body = json.dumps({"error": message, "error_type": kind}).encode()
    h = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    h += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return status, h, body


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class Guard:
    """ASGI middleware enforcing :class:`ServeConfig`'s limits and recording metrics."""

    def __init__(self, app, cfg: ServeConfig, metrics: Metrics, api_key: str | None = None):
        self.app, self.cfg, self.metrics = app, cfg, metrics
        self.api_key = api_key.encode() if api_key else None
        self._slots: asyncio.Semaphore | None = None
        self._loop = None
        self.active = 0  # processing (holding a slot)
        self.waiting = 0  # waiting for a slot
        self.admitted = 0  # accepted and not yet answered: at most max_concurrency + max_queue

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in LABELLED_PATHS else "other"
        t0 = time.perf_counter()
        status = {"code": 500}
        started = {"yes": False}

        async def send_tracked(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
                started["yes"] = True
            await send(msg)

        async def reply(err: tuple) -> None:
            code, headers, body = err
            await send_tracked({"type": "http.response.start", "status": code, "headers": headers})
            await send_tracked({"type": "http.response.body", "body": body})

        try:
            refusal = self._check_auth(scope, path)
            if refusal is None and path in MODEL_PATHS:
                refusal = self._check_overload()
            if refusal is not None:
                await reply(refusal)
                return
            if path not in MODEL_PATHS:
                await self.app(scope, receive, send_tracked)
                return
            self.admitted += 1  # counted at once, so a burst arriving in one loop tick cannot overshoot
            try:
                await asyncio.wait_for(
                    self._admitted(scope, receive, send_tracked, reply), timeout=self.cfg.request_timeout_s
                )
            except TimeoutError:
                self.metrics.rejected["timeout"] += 1
                if not started["yes"]:
                    await reply(
                        json_error(
                            503,
                            f"request not answered within {self.cfg.request_timeout_s:g} s",
                            "timeout",
                            {"Retry-After": "1"},
                        )
                    )
            finally:
                self.admitted -= 1
        finally:
            self.metrics.request(route, status["code"], time.perf_counter() - t0)

    @property
    def slots(self) -> asyncio.Semaphore:
        # one semaphore per event loop: test clients may run each request in a fresh loop
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(self.cfg.max_concurrency), loop
        return self._slots

    def _check_auth(self, scope: Scope, path: str) -> tuple | None:
        if self.api_key is None or path in OPEN_PATHS:
            return None
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), self.api_key):
            return None
        self.metrics.rejected["unauthorized"] += 1
        return json_error(401, "missing or wrong API key", "unauthorized", {"WWW-Authenticate": "Bearer"})

    def _check_overload(self) -> tuple | None:
        if self.admitted >= self.cfg.max_concurrency + self.cfg.max_queue:
            self.metrics.rejected["overloaded"] += 1
            return json_error(
                429, "server busy: too many requests in progress", "overloaded", {"Retry-After": "1"}
            )
        return None

    async def _read_body(self, receive: Receive) -> bytes | tuple:
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.cfg.max_body_bytes:
                self.metrics.rejected["body_too_large"] += 1
                return json_error(
                    413, f"request body larger than {self.cfg.max_body_bytes} bytes", "payload_too_large"
                )
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    async def _admitted(self, scope: Scope, receive: Receive, send: Send, reply) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.cfg.max_body_bytes:
            self.metrics.rejected["body_too_large"] += 1
            await reply(
                json_error(
                    413, f"request body larger than {self.cfg.max_body_bytes} bytes", "payload_too_large"
                )
            )
            return
        body = await self._read_body(receive)
        if isinstance(body, tuple):
            await reply(body)
            return
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            self.metrics.rejected["invalid_utf8"] += 1
            await reply(json_error(422, f"request body is not valid UTF-8 (byte {e.start})", "validation"))
            return
        self.waiting += 1
        self.metrics.queued = self.waiting
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
            self.metrics.queued = self.waiting
        self.active += 1
        self.metrics.in_flight = self.active
        try:
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            self.active -= 1
            self.metrics.in_flight = self.active
            self.slots.release()
