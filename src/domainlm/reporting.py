"""The one progress contract every long command reports through (the CLI draws it; the library is quiet).

Every library function that takes a while (prepare, tokenizer, recommend, pretrain, finetune, serve,
demo) takes ``reporter: Reporter | None`` and uses :class:`Quiet` when it is None. The CLI passes
``domainlm.progress.RichReporter``; a test passes an object that records what it is told.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """What a command tells the person running it.

    - ``start(info)``: a job with a progress display begins. ``info["job"]`` names it (absent means
      "pretrain"): ``"pretrain"`` gives family, objective, params, bf16, threads, tokens_per_step,
      budget_s and step; ``"prepare"`` gives the inputs.
    - ``step(row)``: the job moved on. For pretrain a metrics row (step, loss, tokens_per_s, progress;
      val_loss and val_accuracy after an evaluation); for prepare one input file read: files and bytes
      so far and the file's path.
    - ``message(text)``: one line for the user (plain text, not markup).
    - ``finish()``: the job ended; called on every exit path, so it must be idempotent.
    """

    def start(self, info: dict) -> None: ...
    def step(self, row: dict) -> None: ...
    def message(self, text: str) -> None: ...
    def finish(self) -> None: ...


class Quiet:
    """The library's default Reporter: says nothing."""

    def start(self, info: dict) -> None: ...
    def step(self, row: dict) -> None: ...
    def message(self, text: str) -> None: ...
    def finish(self) -> None: ...
