"""Property tests (hypothesis) for the cleaning steps: never raise on any string, idempotent."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domainlm.corpus import clean

# Any code point, lone surrogates included, plus the characters the steps care about (line breaks, form
# feeds, hyphens, digits) drawn often enough to build page layouts.
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF)
LAYOUT = st.sampled_from(
    [
        "\n",
        "\f",
        "-",
        "-\n",
        " ",
        "\t",
        "\r",
        "\r\n",
        "Page 1",
        "12",
        "a",
        "Z",
        "é",
        "e\u0301",
        "\u00a0",
        "\u2028",
        "\x85",
        "\ud800",
        "\udfff",
        "Ã©",
        "â€™",
    ]
)
TEXT = st.lists(st.one_of(ANY_CHAR, LAYOUT), max_size=80).map("".join)
FUNCS = {**clean.STEPS, "drop_invalid": clean.drop_invalid}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(FUNCS))
@SETTINGS
@given(text=TEXT)
def test_step_never_raises_and_is_idempotent(name, text):
    fn = FUNCS[name]
    once = fn(text)
    assert isinstance(once, str)
    assert fn(once) == once


@SETTINGS
@given(text=TEXT)
def test_full_pipeline_idempotent_and_encodable(text):
    enabled = dict.fromkeys(clean.STEPS, True)
    once = clean.clean(text, enabled)
    assert clean.clean(once, enabled) == once
    once.encode("utf-8")  # no lone surrogate survives: the corpus is always valid UTF-8


def test_steps_do_what_they_say():
    assert clean.dehyphenate("consti-\ntution") == "constitution"
    assert clean.dehyphenate("well-\nKnown") == "well-\nKnown"  # a capital after the break: a real hyphen
    assert clean.normalize_whitespace("a \t b\r\n\n\n\nc  ") == "a b\n\nc"
    assert clean.unicode_nfc("e\u0301") == "\u00e9"
    assert clean.fix_encoding("cafÃ©") == "café"
    assert clean.drop_invalid("a\ud800b\x00c") == "abc"
    pages = [f"THE GAZETTE OF INDIA\nArticle {i} body text number {i}.\nPage {i} of 5" for i in range(1, 6)]
    out = clean.strip_repeated_lines("\f".join(pages))
    assert "GAZETTE" not in out and "Page" not in out
    assert all(f"Article {i} body text number {i}." in out for i in range(1, 6))
