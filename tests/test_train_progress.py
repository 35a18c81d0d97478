"""The progress display shows loss, tokens/s, % of the budget and an ETA, and stops cleanly."""

from __future__ import annotations

import io

from rich.console import Console

from domainlm.progress import RichReporter


def test_progress_bar_shows_loss_speed_budget_and_eta():
    buf = io.StringIO()
    rep = RichReporter(Console(file=buf, width=160, force_terminal=False))
    rep.start(
        {
            "family": "bert",
            "objective": "mlm",
            "params": 2.5e6,
            "bf16": True,
            "threads": 2,
            "tokens_per_step": 4096,
            "budget_s": 600,
            "step": 0,
        }
    )
    rep.step({"step": 10, "loss": 7.25, "tokens_per_s": 12345.0, "progress": 0.25})
    rep.step({"step": 10, "val_loss": 6.5, "val_accuracy": 0.125})
    rep.message("a message")
    rep.finish()
    rep.finish()  # idempotent: the loop calls it on every exit path
    text = buf.getvalue()
    for part in (
        "2.5M parameters",
        "bf16 on",
        "loss 7.250",
        "12,345 tok/s",
        "val 6.500 acc 12.5%",
        "ETA",
        "a message",
        "100%",
    ):
        assert part in text, part
