"""serve: answer HTTP requests with a run's model, on a CPU, safely.

    domainlm serve RUN [--host 127.0.0.1] [--port 8000] [--onnx] [--api-key-file F]

``RUN`` is a run folder, a HF model folder or an ONNX export folder. The app (routes, schemas) is in
:mod:`.app`, limits and the API key in :mod:`.limits`, micro-batching in :mod:`.batching`, the model
in :mod:`.engine`, Prometheus metrics in :mod:`.metrics`. uvicorn runs it; on SIGTERM it stops
accepting connections, lets in-flight requests finish (up to ``graceful_timeout_s``) and returns.
"""

from __future__ import annotations

import ipaddress
import signal
from pathlib import Path

from domainlm import config as cfgmod
from domainlm.errors import UserError
from domainlm.reporting import Quiet, Reporter
from domainlm.serve.limits import ServeConfig

__all__ = ["ServeConfig", "build_app", "is_loopback", "read_api_key", "serve"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_key(path: str | Path) -> str:
    """The API key in ``path`` (surrounding whitespace stripped); it must be non-empty."""
    p = Path(path)
    try:
        key = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise UserError(
            f"cannot read the API key file '{p}'", "Point --api-key-file at a readable text file"
        ) from None
    if len(key) < 8 or any(c.isspace() for c in key):
        raise UserError(
            f"the API key in '{p}' is shorter than 8 characters or contains spaces",
            "Write one random token, e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`",
        )
    return key


def build_app(run: str | Path, cfg: ServeConfig | None = None):
    """(ASGI app, engine, warnings) for ``run`` with settings ``cfg``; loads the model."""
    from domainlm.serve.app import create_app
    from domainlm.serve.engine import load_engine

    cfg = cfg or ServeConfig()
    api_key = read_api_key(cfg.api_key_file) if cfg.api_key_file else None
    notes = []
    if not is_loopback(cfg.host) and api_key is None:
        notes.append(
            f"binding {cfg.host} without an API key: anyone who can reach this port can use the model "
            "(pass --api-key-file)"
        )
    engine = load_engine(run, onnx=cfg.onnx, threads=cfg.threads)
    return create_app(engine, cfg, api_key), engine, notes


def serve(
    run: str | Path,
    host: str | None = None,
    port: int | None = None,
    onnx: bool | None = None,
    api_key_file: str | Path | None = None,
    cors_origins: list[str] | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Serve ``run`` until SIGINT/SIGTERM; returns ``{"stopped_by": signal name}`` after a graceful stop.

    Settings: defaults < ``config`` YAML (its ``serve:`` section or a flat mapping) < ``overrides``
    (``max_texts=16``) < flags. ``reporter`` is told any warnings and the address, routes and model
    before the server starts.
    """
    import uvicorn

    data = cfgmod.read_yaml(config) if config else {}
    if isinstance(data.get("serve"), dict):
        data = data["serve"]
    cfg = cfgmod.build(
        ServeConfig,
        (str(config), data),
        ("--set", cfgmod.parse_sets([o.removeprefix("serve.") for o in overrides or []])),
        (
            "command-line flags",
            {
                k: v
                for k, v in {
                    "host": host,
                    "port": port,
                    "onnx": onnx,
                    "api_key_file": str(api_key_file) if api_key_file else None,
                    "cors_origins": cors_origins or None,
                }.items()
                if v is not None
            },
        ),
    )
    app, engine, notes = build_app(run, cfg)
    reporter = reporter or Quiet()
    info, url = engine.info(), f"http://{cfg.host}:{cfg.port}"
    for note in notes:
        reporter.message(f"warning: {note}")
    reporter.message(
        f"serving {info['model_id']} ({info['task']}, {info['backend']}) at {url}  "
        f"routes: {', '.join(info['routes'])}; docs at {url}/docs"
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=cfg.host,
            port=cfg.port,
            log_level="warning",
            timeout_graceful_shutdown=cfg.graceful_timeout_s,
            access_log=False,
            server_header=False,
            lifespan="on",
        )
    )
    caught: list[str] = []
    # uvicorn re-raises the signal it caught after its graceful shutdown: take it here so the
    # process returns normally (exit code 0) instead of dying of SIGTERM
    previous = {
        s: signal.signal(s, lambda n, f: caught.append(signal.Signals(n).name))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return {"stopped_by": caught[-1] if caught else "shutdown", "url": f"http://{cfg.host}:{cfg.port}"}
