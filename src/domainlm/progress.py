"""Progress display for long work (rich): loss, tokens/s, % of budget, ETA. Used by the CLI only."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class RichReporter:
    """Implements domainlm.reporting.Reporter with a rich progress bar on stderr."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task = None
        self.last: dict = {}

    def start(self, info: dict) -> None:
        self.console.print(
            f"model: {info['family']} {info['objective']}, {info['params'] / 1e6:.1f}M parameters; "
            f"bf16 {'on' if info['bf16'] else 'off'}; {info['threads']} threads; "
            f"{info['tokens_per_step']:,} tokens/step; budget {info['budget_s']:.0f} s"
        )
        self.progress = Progress(
            TextColumn("[bold]pretrain"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("step {task.fields[step]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TextColumn("val {task.fields[val]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "pretrain", total=1.0, step=info.get("step", 0), loss="-", tps="-", val="-"
        )
        self.t0 = time.perf_counter()

    def step(self, row: dict) -> None:
        if self.progress is None:
            return
        upd = {"step": row["step"]}
        if "loss" in row:
            upd |= {
                "loss": f"{row['loss']:.3f}",
                "tps": f"{row['tokens_per_s']:,.0f}",
                "completed": row["progress"],
            }
        if "val_loss" in row:
            acc = row.get("val_accuracy")
            upd["val"] = f"{row['val_loss']:.3f}" + (f" acc {acc:.1%}" if acc is not None else "")
        self.progress.update(self.task, **upd)

    def message(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(text)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=1.0)
            self.progress.stop()
            self.progress = None
