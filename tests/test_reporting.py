"""One Reporter protocol for every long command: prepare reports each file through it, and the CLI's
rich implementation draws both pretrain's bar and prepare's file counter."""

from __future__ import annotations

import io
import json

from rich.console import Console

from domainlm.progress import RichReporter
from domainlm.reporting import Quiet, Reporter


class Recorder:
    """A Reporter that keeps every call."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []

    def start(self, info):
        self.calls.append(("start", info))

    def step(self, row):
        self.calls.append(("step", row))

    def message(self, text):
        self.calls.append(("message", text))

    def finish(self):
        self.calls.append(("finish", None))


def test_prepare_reports_each_input_file(tmp_path):
    from domainlm.corpus.prepare import prepare
    from tests.conftest import make_docs

    raw = tmp_path / "raw"
    raw.mkdir()
    docs = make_docs(6)
    for i, text in enumerate(docs[:3]):
        (raw / f"{i}.txt").write_text(text)
    (raw / "rows.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs[3:]))
    rec = Recorder()
    prepare(
        [raw], tmp_path / "corpus", overrides=["dedup_near=false", "min_chars=10"], workers=1, reporter=rec
    )
    kinds = [k for k, _ in rec.calls]
    assert kinds[0] == "start" and rec.calls[0][1]["job"] == "prepare" and kinds[-1] == "finish"
    steps = [row for k, row in rec.calls if k == "step"]
    assert [s["files"] for s in steps] == [1, 2, 3, 4]
    assert steps[-1]["bytes"] == sum(p.stat().st_size for p in raw.iterdir())
    assert steps[-1]["path"].endswith("rows.jsonl")


def test_quiet_and_the_rich_reporter_implement_the_protocol():
    def conforms(obj: Reporter) -> bool:
        return all(callable(getattr(obj, m, None)) for m in ("start", "step", "message", "finish"))

    assert conforms(Quiet()) and conforms(RichReporter(Console(file=io.StringIO())))


def test_rich_reporter_draws_prepare_progress():
    buf = io.StringIO()
    rep = RichReporter(Console(file=buf, width=160, force_terminal=True))
    rep.start({"job": "prepare", "inputs": ["raw"]})
    rep.step({"files": 12, "bytes": 3 * 2**20, "path": "raw/a/b.pdf"})
    rep.progress.refresh()
    rep.message("a [bold]plain[/bold] message")
    rep.finish()
    rep.finish()  # idempotent
    text = buf.getvalue()
    for part in ("prepare", "12 files", "3.0 MB", "b.pdf", "a [bold]plain[/bold] message"):
        assert part in text, (part, text)
