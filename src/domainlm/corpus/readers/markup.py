"""HTML: visible text with block structure kept as line breaks (selectolax's lexbor parser, maintained).

Navigation, scripts and page chrome are dropped. Inline elements stay inside their line
(``<b>con</b>stitution`` -> ``constitution``); block elements end a line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from domainlm.corpus.readers import ReadOptions, Record
from domainlm.corpus.readers.text import decode

_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg", "template"]
_BLOCKS = (
    "p,div,br,li,h1,h2,h3,h4,h5,h6,tr,td,th,section,article,blockquote,pre,table,ul,ol,dd,dt,"
    "hr,main,caption,figcaption"
)


def read_html(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode(data))
    title = tree.css_first("title")
    meta = {"title": title.text(strip=True)} if title is not None else {}
    for tag in _DROP:
        for node in tree.css(tag):
            node.decompose()
    for node in tree.css(_BLOCKS):
        node.insert_after("\n")
    body = tree.body or tree.root
    text = body.text(separator="", strip=False) if body is not None else ""
    yield Record(text, meta=meta)
