"""The page at ``/``: try the model in a browser (fill-mask, classify, generate, corpus search), read its card.

    GET /                 the page (static/index.html): no external assets, a strict Content-Security-Policy
    GET /static/NAME      its script and style sheet, from the package
    GET /card             the model card, the run's metrics and what the page can do (JSON)

The page is a client of the API: it calls the same routes with the same limits, and sends the API key
that the person types in (kept in the tab's sessionStorage) as the Bearer token. The page itself and
its static files hold nothing about the model, so they stay open like /docs; /card needs the key.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from domainlm.serve.runtime import Runtime, runtime

STATIC = {"page.js": "text/javascript", "page.css": "text/css"}
# everything from this origin, nothing inline or remote: the page cannot load or send to anything else
CSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
METRIC_FILES = ("train_summary.json", "eval.json", "metrics.json")  # pretrain, evaluate, finetune
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)

router = APIRouter(include_in_schema=False)


def _static(name: str) -> bytes:
    return (resources.files("domainlm.serve") / "static" / name).read_bytes()


@router.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(_static("index.html"), headers={"Content-Security-Policy": CSP})


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return Response(_static(name), media_type=STATIC[name], headers={"Cache-Control": "no-cache"})


def _flat(d: dict, prefix: str = "") -> dict:
    """Scalars of a metrics file, nested keys joined with '.', lists left out."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, str | int | float | bool) or v is None:
            out[f"{prefix}{k}"] = v
    return out


def read_metrics(folder: Path | None) -> dict:
    """{metrics file: flat scalars} of the run folder (read on each request: evaluate may add eval.json)."""
    metrics = {}
    for name in METRIC_FILES if folder is not None else ():
        f = folder / name
        if f.is_file():
            try:
                metrics[name] = _flat(json.loads(f.read_text(encoding="utf-8")))
            except (ValueError, AttributeError):
                continue  # a file being rewritten, or not an object: the page shows the others
    return metrics


def page_facts(engine, src, search_corpus: Path | None) -> tuple[dict, Path | None]:
    """(what the page shows that does not change while serving, the folder of the metrics files).

    ``src``: the served folder (an export.Source), or None.
    """
    facts = {
        "model_id": engine.model_id,
        "task": engine.task,
        "backend": engine.backend,
        "labels": engine.labels,
        "mask_token": getattr(engine.tok, "mask_token", None),
        "search": search_corpus is not None,
        "card": "",
    }
    if engine.task == "fill-mask":
        facts["example"] = fill_mask_example(search_corpus, engine.tok.mask_token)
    if src is None:  # an engine built by hand, not from a folder
        return facts, None
    card = src.model_dir / "README.md"
    if card.is_file():
        facts["card"] = _FRONT_MATTER.sub("", card.read_text(encoding="utf-8"))
    return facts, Path(src.run_dir or src.path)


def fill_mask_example(corpus: Path | None, mask: str) -> str:
    """A held-out sentence of the corpus with one middle word masked (the page's first example)."""
    from domainlm.corpus.documents import read_documents

    if corpus is not None:
        for split in ("test", "validation"):
            for doc in read_documents(corpus, split):
                for sentence in re.split(r"(?<=[.;:])\s+", doc["text"]):
                    words = sentence.split()
                    pick = [i for i, w in enumerate(words) if w.isalpha() and w.islower() and len(w) >= 5]
                    if 8 <= len(words) <= 30 and pick:
                        words[pick[len(pick) // 2]] = mask
                        return " ".join(words)
    return f"The {mask} shall be elected by the members of an electoral college."


@router.get("/card")
async def card(rt: Runtime = Depends(runtime)) -> dict:
    return {**rt.page, "metrics": read_metrics(rt.run_dir)}
