"""HTML: visible text with block structure kept as line breaks (selectolax, a maintained parser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from . import ReadOptions, Record
from .text import decode

_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg", "template"]


def read_html(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    from selectolax.parser import HTMLParser

    tree = HTMLParser(decode(data))
    title = tree.css_first("title")
    for tag in _DROP:
        for node in tree.css(tag):
            node.decompose()
    body = tree.body or tree.root
    text = body.text(separator="\n", strip=True) if body is not None else ""
    yield Record(text, meta={"title": title.text(strip=True)} if title is not None else {})
