"""prepare: deduplication with provenance, deterministic splits, --group-by, language id and filter."""

from __future__ import annotations

import json
from pathlib import Path

from domainlm.corpus.documents import read_documents
from domainlm.corpus.prepare import prepare
from tests.conftest import make_docs

FRENCH = (
    "Le Parlement adopte les lois et contrôle l'action du Gouvernement. Il évalue les politiques "
    "publiques et vote le budget de l'État chaque année selon la procédure prévue par la loi organique."
)


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _quarantine(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "quarantine.jsonl").open()]


def test_exact_and_near_duplicates_report_what_they_duplicate(tmp_path):
    docs = make_docs(20, seed=3)
    near = docs[1].replace("Article 2.", "Article 2 (as amended).", 1)  # one word changed in a long text
    _jsonl(tmp_path / "a.jsonl", [{"text": t} for t in docs])
    _jsonl(
        tmp_path / "b.jsonl", [{"text": docs[0]}, {"text": "  " + docs[0].replace(" ", "  ")}, {"text": near}]
    )
    res = prepare([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "out")
    kept = {d["text"]: d["id"] for d in read_documents(tmp_path / "out")}
    rows = {r["key"]: r for r in _quarantine(tmp_path / "out") if r["source"].endswith("b.jsonl")}
    assert rows["line 1"]["kind"] == rows["line 2"]["kind"] == "exact-duplicate"  # whitespace is normalised
    assert rows["line 1"]["duplicate_of"] == rows["line 2"]["duplicate_of"] == kept[docs[0]]
    assert rows["line 3"]["kind"] == "near-duplicate" and rows["line 3"]["duplicate_of"] == kept[docs[1]]
    assert res.duplicates == 3 and len(kept) == 20


def test_near_dedup_can_be_switched_off(tmp_path):
    docs = make_docs(5, seed=3)
    _jsonl(tmp_path / "a.jsonl", [{"text": t} for t in docs] + [{"text": docs[1] + " Amended."}])
    res = prepare([tmp_path / "a.jsonl"], tmp_path / "out", overrides=["dedup_near=false"])
    assert res.duplicates == 0 and sum(res.documents.values()) == 6


def test_split_is_deterministic_from_the_seed(tmp_path):
    _jsonl(tmp_path / "a.jsonl", [{"text": t} for t in make_docs(200, seed=1)])
    splits = []
    for name, seed in (("s0", 0), ("s0b", 0), ("s1", 1)):
        prepare([tmp_path / "a.jsonl"], tmp_path / name, seed=seed, overrides=["dedup_near=false"])
        splits.append({d["key"]: d["split"] for d in read_documents(tmp_path / name)})
    assert splits[0] == splits[1]
    assert splits[0] != splits[2]
    counts = {s: list(splits[0].values()).count(s) for s in ("train", "validation", "test")}
    assert counts["train"] > counts["validation"] > 0 and counts["test"] > 0


def test_group_by_keeps_each_group_in_one_split(tmp_path):
    docs = make_docs(240, seed=5)
    # 40 acts, each in 6 distinct versions
    _jsonl(tmp_path / "acts.jsonl", [{"text": t, "act_id": f"act-{i % 40}"} for i, t in enumerate(docs)])
    prepare([tmp_path / "acts.jsonl"], tmp_path / "out", group_by="act_id", overrides=["dedup_near=false"])
    split_of_act: dict[str, set[str]] = {}
    for d in read_documents(tmp_path / "out"):
        split_of_act.setdefault(d["meta"]["act_id"], set()).add(d["split"])
    assert len(split_of_act) == 40
    assert all(len(s) == 1 for s in split_of_act.values())
    assert len(set().union(*split_of_act.values())) >= 2  # groups are spread over splits


def test_language_is_stored_counted_and_filterable(tmp_path):
    _jsonl(tmp_path / "mixed.jsonl", [{"text": t} for t in make_docs(6)] + [{"text": FRENCH}])
    res = prepare([tmp_path / "mixed.jsonl"], tmp_path / "all", overrides=["dedup_near=false"])
    assert res.stats["languages"] == {"en": 6, "fr": 1}
    assert {d["language"] for d in read_documents(tmp_path / "all")} == {"en", "fr"}
    res = prepare(
        [tmp_path / "mixed.jsonl"], tmp_path / "en", languages=["en"], overrides=["dedup_near=false"]
    )
    assert res.stats["languages"] == {"en": 6}
    (row,) = [r for r in _quarantine(tmp_path / "en") if r["kind"] == "language"]
    assert "'fr'" in row["reason"]


def test_dehyphenation_and_min_chars(tmp_path):
    (tmp_path / "a.txt").write_text(
        "The consti-\ntution of the Union shall be the supreme law of the land, "
        "binding on every State and authority."
    )
    (tmp_path / "short.txt").write_text("Too short.")
    res = prepare([tmp_path], tmp_path / "out")
    (doc,) = list(read_documents(tmp_path / "out"))
    assert "constitution" in doc["text"]
    assert res.stats["quarantine_reasons"].get("too-short") == 1


def test_worker_processes_give_the_same_corpus(tmp_path, monkeypatch):
    from domainlm.corpus import prepare as prep

    docs = make_docs(150, seed=11)
    _jsonl(tmp_path / "a.jsonl", [{"text": t} for t in docs] + [{"text": docs[3]}, {"nope": 1}])
    monkeypatch.setattr(prep, "BATCH_RECORDS", 8)  # many batches, so both workers get some
    prepare([tmp_path / "a.jsonl"], tmp_path / "one", workers=1)
    prepare([tmp_path / "a.jsonl"], tmp_path / "two", workers=2)
    for name in ("documents.jsonl", "quarantine.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_output_folder_inside_the_input_is_not_read(tmp_path):
    _jsonl(tmp_path / "a.jsonl", [{"text": t} for t in make_docs(5)])
    first = prepare([tmp_path], tmp_path / "corpus", overrides=["dedup_near=false"])
    again = prepare([tmp_path], tmp_path / "corpus", overrides=["dedup_near=false"])
    assert first.stats["files"] == again.stats["files"] == 1
    assert sum(again.documents.values()) == 5 and again.duplicates == 0


def test_split_does_not_depend_on_where_the_folder_lives(tmp_path):
    """The same documents prepared from two locations get the same ids and splits."""
    import json
    import shutil

    from domainlm.corpus.prepare import prepare

    a = tmp_path / "here" / "raw"
    a.mkdir(parents=True)
    (a / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in make_docs(30)))
    b = tmp_path / "elsewhere" / "deeper" / "raw"
    shutil.copytree(a, b)
    prepare([a], tmp_path / "c1", overrides=["dedup_near=false"])
    prepare([b], tmp_path / "c2", overrides=["dedup_near=false"])

    def ids(corpus):
        return [
            (d["id"], d["split"])
            for d in map(json.loads, (corpus / "documents.jsonl").read_text().splitlines())
        ]

    assert ids(tmp_path / "c1") == ids(tmp_path / "c2")
