"""dedup: the near-duplicate index is capped (bounded memory); exact digests are indexed past the cap."""

from __future__ import annotations

from domainlm.corpus.dedup import Deduplicator
from tests.conftest import make_docs


def test_past_the_cap_exact_copies_are_still_caught_and_near_copies_only_of_indexed_documents():
    docs = make_docs(8, seed=2)
    d = Deduplicator(max_docs=3)
    for i, text in enumerate(docs[:3]):
        assert d.check(f"{i:016x}", text) is None
    assert not d.full
    assert d.check(f"{3:016x}", docs[3]) is None and d.full  # past the cap: kept, digest indexed
    assert d.check(f"{4:016x}", docs[3]) == ("exact-duplicate", f"{3:016x}")  # so its copy is caught
    assert d.check(f"{5:016x}", docs[0]) == ("exact-duplicate", f"{0:016x}")
    amended = " Amended by Act 12 of 2020."
    # a near copy of a document within the cap is caught; one of a document past the cap is not:
    # the price of the cap (dedup.py's docstring)
    assert d.check(f"{6:016x}", docs[1] + amended) == ("near-duplicate", f"{1:016x}")
    assert d.check(f"{7:016x}", docs[3] + amended) is None
    assert d._near_docs == 3 and len(d._exact) == 5


def test_many_exact_copies_past_a_small_cap_are_all_removed():
    docs = make_docs(40, seed=4)
    d = Deduplicator(max_docs=5)
    stream = [(f"{i:016x}", t) for i, t in enumerate(docs)] + [
        (f"{100 + i:016x}", t) for i, t in enumerate(docs)
    ]
    verdicts = [d.check(doc_id, text) for doc_id, text in stream]
    assert verdicts[:40] == [None] * 40  # the 40 originals (35 past the cap) are kept
    assert verdicts[40:] == [
        ("exact-duplicate", f"{i:016x}") for i in range(40)
    ]  # every copy names its original
    assert d.full


def test_with_near_dedup_off_the_exact_index_is_never_full():
    d = Deduplicator(near=False, max_docs=1)
    docs = make_docs(3, seed=5)
    assert [d.check(f"{i:016x}", t) for i, t in enumerate(docs)] == [None, None, None]
    assert d.check(f"{9:016x}", docs[2]) == ("exact-duplicate", f"{2:016x}") and not d.full


def test_near_duplicate_names_the_kept_document():
    base = make_docs(1, seed=9)[0]
    d = Deduplicator()
    assert d.check("00000000000000aa", base) is None
    assert d.check("00000000000000bb", base + " Amended by Act 12 of 2020.") == (
        "near-duplicate",
        "00000000000000aa",
    )
    assert d.check("00000000000000cc", make_docs(2, seed=10)[1]) is None


def test_prepare_with_a_small_cap_removes_every_exact_copy(tmp_path):
    import json

    from domainlm.corpus.prepare import prepare

    docs = make_docs(20, seed=6)
    raw = tmp_path / "raw"
    raw.mkdir()
    with (raw / "docs.jsonl").open("w") as f:
        for text in docs + docs[10:]:  # copies of the last 10, all of them past a cap of 3
            f.write(json.dumps({"text": text}) + "\n")
    res = prepare([raw], tmp_path / "corpus", overrides=["dedup_max_docs=3"])
    stats = json.loads((tmp_path / "corpus" / "stats.json").read_text())
    assert res.duplicates == 10 and sum(res.documents.values()) == 20
    assert stats["dedup_index_full"] is True
