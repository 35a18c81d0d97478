"""Bad input: each kind of broken file ends in the corpus or in quarantine with a clear reason.

One raw folder holds every case; ``prepare`` runs once on it (module fixture); each test checks one case.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest

from domainlm.corpus import readers
from domainlm.corpus.prepare import prepare
from tests.conftest import make_docs

HUGE_MB = 50
CAP_MB = 60  # prepare.max_file_mb for this run: above the 50 MB line, below the gzip bomb


def _pdf(path: Path, pages: list[str] | None) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for i, body in enumerate(pages or [None]):
        pdf.add_page()
        if body is None:  # a "scan": drawn shapes, no text layer
            pdf.rect(20, 20, 120, 160, style="F")
            continue
        pdf.cell(text="THE GAZETTE OF INDIA, EXTRAORDINARY")
        pdf.ln(8)
        pdf.multi_cell(0, 6, text=body)
        pdf.ln(4)
        pdf.cell(text=f"Page {i + 1}")
    pdf.output(str(path))


def _docx(path: Path, paragraphs: list[str]) -> None:
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    d.save(str(path))


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    raw = tmp_path_factory.mktemp("bad_raw")
    docs = make_docs(12, seed=7)
    (raw / "good.txt").write_text(docs[0], encoding="utf-8")
    latin = "Le président de la République est élu au suffrage universel; l'Assemblée délibère. " * 3
    (raw / "latin1.txt").write_bytes(latin.encode("latin-1"))
    (raw / "binary.txt").write_bytes(random.Random(0).randbytes(100_000))
    (raw / "empty.txt").write_bytes(b"")
    words = [f"clause{i % 997} shall apply" for i in range(HUGE_MB * 2**20 // 20)]
    huge = " ".join(words)[: HUGE_MB * 2**20]
    (raw / "huge_line.txt").write_text(huge, encoding="ascii")
    _pdf(raw / "statute.pdf", [docs[1], docs[2], docs[3], docs[4]])
    _pdf(raw / "scanned.pdf", None)
    valid = (raw / "statute.pdf").read_bytes()
    (raw / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + random.Random(1).randbytes(4000))
    (raw / "truncated.pdf").write_bytes(valid[: len(valid) // 3])
    (raw / "bomb.txt.gz").write_bytes(gzip.compress(b"spam " * ((CAP_MB + 40) * 2**20 // 5), compresslevel=1))
    _docx(raw / "order.docx", docs[5].split(". "))
    (raw / "page.html").write_text(
        f"<html><head><title>T</title><script>x=1</script></head><body>"
        f"<nav>menu</nav><p>{docs[6]}</p></body></html>",
        encoding="utf-8",
    )
    (raw / "rows.csv").write_text('id,text\n1,"' + docs[7] + '"\n', encoding="utf-8")
    lines = [
        json.dumps({"text": docs[8]}),
        "this is { not json",
        json.dumps({"body": docs[9]}),
        json.dumps({"text": 5}),
        json.dumps({"text": docs[10]}),
    ]
    (raw / "export.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (raw / "unreadable.txt").write_text(docs[11], encoding="utf-8")
    os.chmod(raw / "unreadable.txt", 0)
    (raw / "notes.xyz").write_text("unsupported format")
    os.symlink(raw / "loop_b.txt", raw / "loop_a.txt")
    os.symlink(raw / "loop_a.txt", raw / "loop_b.txt")
    (raw / "sub").mkdir()
    os.symlink(raw, raw / "sub" / "up")  # a folder link pointing to its own ancestor: a walk loop

    target = raw / "unreadable.txt"
    real_open = readers.open_binary

    def open_binary(path: Path):
        # Tests may run as root, where chmod 000 does not stop reading: simulate the refusal the same
        # way the OS reports it to an ordinary user (PermissionError from open).
        if Path(path) == target and os.geteuid() == 0:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    out = tmp_path_factory.mktemp("bad_corpus")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(readers, "open_binary", open_binary)
        result = prepare([raw], out, overrides=[f"max_file_mb={CAP_MB}"])
    os.chmod(raw / "unreadable.txt", 0o644)
    documents = [json.loads(line) for line in (out / "documents.jsonl").open(encoding="utf-8")]
    quarantine = [json.loads(line) for line in (out / "quarantine.jsonl").open(encoding="utf-8")]
    return raw, result, documents, quarantine


def _in_corpus(run, name: str) -> list[dict]:
    return [d for d in run[2] if Path(d["source"]).name == name]


def _quarantined(run, name: str) -> list[dict]:
    return [q for q in run[3] if Path(q["source"]).name == name and not q["key"]]


def _only_quarantine(run, name: str, kind: str, words: str) -> None:
    assert not _in_corpus(run, name), f"{name} should not be in the corpus"
    rows = _quarantined(run, name)
    assert [r["kind"] for r in rows] == [kind], rows
    assert words in rows[0]["reason"].lower(), rows[0]["reason"]


def test_latin1_file_is_decoded_into_the_corpus(bad_run):
    (doc,) = _in_corpus(bad_run, "latin1.txt")
    assert "président de la République" in doc["text"] and "\ufffd" not in doc["text"]
    assert doc["language"] == "fr"


def test_random_binary_is_quarantined(bad_run):
    _only_quarantine(bad_run, "binary.txt", "binary", "binary")


def test_empty_file_is_quarantined(bad_run):
    _only_quarantine(bad_run, "empty.txt", "empty", "empty")


def test_50mb_single_line_is_kept(bad_run):
    (doc,) = _in_corpus(bad_run, "huge_line.txt")
    assert doc["n_chars"] > (HUGE_MB - 1) * 2**20 and "\n" not in doc["text"]


def test_pdf_without_text_layer_is_quarantined(bad_run):
    _only_quarantine(bad_run, "scanned.pdf", "no-text-layer", "ocr")


def test_corrupt_and_truncated_pdfs_are_quarantined(bad_run):
    _only_quarantine(bad_run, "corrupt.pdf", "corrupt", "corrupt")
    rows = _quarantined(bad_run, "truncated.pdf")
    assert (
        not _in_corpus(bad_run, "truncated.pdf") and rows and rows[0]["kind"] in {"corrupt", "no-text-layer"}
    )


def test_gzip_expanding_past_the_cap_is_quarantined(bad_run):
    _only_quarantine(bad_run, "bomb.txt.gz", "too-large", "decompressed size exceeds the cap")


def test_unreadable_file_is_quarantined(bad_run):
    _only_quarantine(bad_run, "unreadable.txt", "unreadable", "permission denied")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 files; the simulated case above covers it")
def test_chmod_000_file_is_quarantined_for_real(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "ok.txt").write_text(make_docs(1)[0])
    (raw / "locked.txt").write_text(make_docs(2)[1])
    os.chmod(raw / "locked.txt", 0)
    try:
        prepare([raw], tmp_path / "c")
    finally:
        os.chmod(raw / "locked.txt", 0o644)
    rows = [json.loads(line) for line in (tmp_path / "c" / "quarantine.jsonl").open()]
    assert [r["kind"] for r in rows if r["source"].endswith("locked.txt")] == ["unreadable"]


def test_symlink_loops_are_quarantined_not_followed(bad_run):
    for name in ("loop_a.txt", "loop_b.txt"):
        _only_quarantine(bad_run, name, "link", "loop")
    rows = [q for q in bad_run[3] if q["source"].endswith(os.path.join("sub", "up"))]
    assert [r["kind"] for r in rows] == ["link"]


def test_bad_jsonl_lines_are_quarantined_and_good_lines_kept(bad_run):
    kept = _in_corpus(bad_run, "export.jsonl")
    assert sorted(d["key"] for d in kept) == ["line 1", "line 5"]
    bad = {q["key"]: q for q in bad_run[3] if Path(q["source"]).name == "export.jsonl"}
    assert "not valid JSON" in bad["line 2"]["reason"]
    assert "no field 'text'" in bad["line 3"]["reason"]
    assert "not text" in bad["line 4"]["reason"]
    assert {bad[k]["kind"] for k in ("line 2", "line 3", "line 4")} == {"bad-record"}


def test_other_formats_enter_the_corpus(bad_run):
    for name in ("good.txt", "statute.pdf", "order.docx", "page.html", "rows.csv"):
        assert _in_corpus(bad_run, name), name
    (html,) = _in_corpus(bad_run, "page.html")
    assert "menu" not in html["text"] and "x=1" not in html["text"]
    _only_quarantine(bad_run, "notes.xyz", "unsupported-type", "unsupported")


def test_pdf_page_headers_and_numbers_are_removed(bad_run):
    (pdf,) = _in_corpus(bad_run, "statute.pdf")
    assert "GAZETTE" not in pdf["text"] and "Page 2" not in pdf["text"]
    assert "Article 2." in pdf["text"]


def test_every_input_is_in_the_corpus_or_in_quarantine(bad_run):
    raw, result, documents, quarantine = bad_run
    inputs = set()
    for dirpath, dirnames, filenames in os.walk(raw):
        inputs.update(str(Path(dirpath, n)) for n in filenames + dirnames if n != "sub")
    accounted = {d["source"] for d in documents} | {q["source"] for q in quarantine}
    assert inputs - accounted == set()


def test_summary_counts_every_reason(bad_run):
    stats = bad_run[1].stats
    reasons = stats["quarantine_reasons"]
    for kind in (
        "binary",
        "empty",
        "no-text-layer",
        "corrupt",
        "too-large",
        "unreadable",
        "link",
        "bad-record",
        "unsupported-type",
    ):
        assert reasons.get(kind, 0) >= 1, kind
    assert stats["quarantined"] == len(bad_run[3]) == sum(reasons.values())
    assert sum(stats["documents"].values()) == len(bad_run[2])
    assert stats["languages"].get("en", 0) >= 5 and stats["languages"].get("fr") == 1
