"""PDF (text layer, pypdf) and Word .docx (python-docx).

PDF pages are joined with form feeds so the cleaner can find headers/footers repeated across pages.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from domainlm.corpus.readers import ReadError, ReadOptions, Record


def read_pdf(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise ReadError(
                    "PDF is encrypted; decrypt it first (e.g. qpdf --decrypt)", "encrypted"
                ) from None
        pages = [page.extract_text() or "" for page in reader.pages]
    except ReadError:
        raise
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        OSError,
        AttributeError,
        IndexError,
        RecursionError,
        AssertionError,
        ZeroDivisionError,
    ) as e:
        raise ReadError(
            f"corrupt or unreadable PDF ({e.__class__.__name__}: {str(e)[:120]})", "corrupt"
        ) from None
    text = "\f".join(pages)
    if not text.replace("\f", "").strip():
        raise ReadError(
            f"PDF has no text layer ({len(pages)} pages of images); run OCR first (e.g. ocrmypdf) and prepare the result",
            "no-text-layer",
        )
    yield Record(text, meta={"pages": len(pages)})


def read_docx(data: bytes, path: Path, opts: ReadOptions) -> Iterator[Record]:
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, AttributeError, TypeError) as e:
        raise ReadError(f"corrupt .docx ({e.__class__.__name__})", "corrupt") from None
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    yield Record("\n".join(parts))
