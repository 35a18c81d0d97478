"""dedup: the index is capped (bounded memory) and keeps answering for what it holds."""

from __future__ import annotations

from domainlm.corpus.dedup import Deduplicator
from tests.conftest import make_docs


def test_index_is_capped_and_still_checks_against_indexed_documents():
    docs = make_docs(6, seed=2)
    d = Deduplicator(max_docs=3)
    for i, text in enumerate(docs[:3]):
        assert d.check(f"{i:016x}", text) is None
    assert not d.full
    assert d.check(f"{3:016x}", docs[3]) is None and d.full  # past the cap: kept but not indexed
    assert d.check(f"{4:016x}", docs[3]) is None  # so its copy is not caught...
    assert d.check(f"{5:016x}", docs[0]) == ("exact-duplicate", f"{0:016x}")  # ...but indexed ones still are
    assert len(d._ids) == 3


def test_near_duplicate_names_the_kept_document():
    base = make_docs(1, seed=9)[0]
    d = Deduplicator()
    assert d.check("00000000000000aa", base) is None
    assert d.check("00000000000000bb", base + " Amended by Act 12 of 2020.") == (
        "near-duplicate",
        "00000000000000aa",
    )
    assert d.check("00000000000000cc", make_docs(2, seed=10)[1]) is None
