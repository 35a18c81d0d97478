"""Cleaning steps: small pure functions ``str -> str``, each switchable from ``PrepareConfig``.

Every function accepts any Python string (lone surrogates included), never raises, and is idempotent:
``f(f(x)) == f(x)``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable

_SURROGATES = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # keeps \t \n \f (page breaks) \r
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def drop_invalid(text: str) -> str:
    """Remove lone surrogates and C0 control characters except tab, line and page breaks."""
    return _CONTROL.sub("", _SURROGATES.sub("", text))


def fix_encoding(text: str) -> str:
    """Repair mojibake such as 'Ã©' -> 'é' (ftfy).

    ftfy was most of prepare's time (42 of 68 s on 20 MB of licences); text that is ASCII or that ftfy's
    own detector does not flag (``ftfy.badness.is_bad``) has no mojibake to repair and is returned as is.
    """
    import ftfy
    from ftfy.badness import is_bad

    if text.isascii() or not is_bad(text):
        return text

    fixed = ftfy.fix_text(text, normalization="NFC", uncurl_quotes=False, fix_line_breaks=True)
    # ftfy is not always idempotent in one pass on adversarial input: iterate to a fixed point.
    for _ in range(3):
        again = ftfy.fix_text(fixed, normalization="NFC", uncurl_quotes=False, fix_line_breaks=True)
        if again == fixed:
            break
        fixed = again
    return fixed


def unicode_nfc(text: str) -> str:
    """Unicode canonical composition (NFC): one code-point sequence per visible character."""
    return unicodedata.normalize("NFC", text)


def normalize_whitespace(text: str) -> str:
    """Unify line breaks, collapse runs of spaces and tabs, trim lines, keep at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


_HYPHEN_BREAK = re.compile(r"(\w)-\n(?=[a-z])")


def dehyphenate(text: str) -> str:
    """Join a word hyphenated across a line break: 'consti-\\ntution' -> 'constitution'."""
    prev = None
    while prev != text:
        prev, text = text, _HYPHEN_BREAK.sub(r"\1", text)
    return text


_PAGE_NUMBER = re.compile(r"^(?:page\s*)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?$", re.IGNORECASE)


def strip_repeated_lines(text: str, min_pages: int = 3) -> str:
    """Drop page furniture: lines repeated on many pages (headers/footers) and bare page numbers.

    Pages are separated by form feeds (as PDF text layers are joined). Without at least ``min_pages``
    pages the text is returned unchanged apart from lone page-number lines between pages.
    """
    pages = text.split("\f")
    if len(pages) < min_pages:
        return text.replace("\f", "\n")
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({line.strip() for line in page.split("\n") if line.strip()})
    threshold = max(2, len(pages) // 2)
    repeated = {line for line, n in counts.items() if n >= threshold}
    kept = []
    for page in pages:
        lines = [
            line
            for line in page.split("\n")
            if line.strip() not in repeated and not _PAGE_NUMBER.match(line.strip())
        ]
        kept.append("\n".join(lines))
    return "\n".join(kept)


# Order matters: decode problems first, then normalise, then layout.
STEPS: dict[str, Callable[[str], str]] = {
    "fix_encoding": fix_encoding,
    "unicode_nfc": unicode_nfc,
    "strip_repeated_lines": strip_repeated_lines,
    "dehyphenate": dehyphenate,
    "normalize_whitespace": normalize_whitespace,
}


def clean(text: str, enabled: dict[str, bool], max_passes: int = 4) -> str:
    """Run the enabled steps in order (``drop_invalid`` always runs first), repeated to a fixed point.

    Each step is idempotent alone, but a later step can expose work for an earlier one (whitespace
    normalisation removing the character that kept ftfy from re-decoding 'œ•' as mojibake, found by the
    property tests), so the sequence is repeated until nothing changes (at most ``max_passes``).
    """
    steps = [fn for name, fn in STEPS.items() if enabled.get(name, False)]
    text = drop_invalid(text)
    for _ in range(max_passes):
        before = text
        for fn in steps:
            text = fn(text)
        if text == before:
            break
    return text
