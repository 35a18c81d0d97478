"""Progress display for long work (rich), the CLI's domainlm.reporting.Reporter. Used by the CLI only.

pretrain: a bar with loss, tokens/s, % of the budget and an ETA. prepare: a spinner with files and MB
read, files/s and MB/s. Messages are printed above the display, as plain text.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichReporter:
    """Implements domainlm.reporting.Reporter with a rich progress display on stderr."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task = None
        self.job = "pretrain"
        self.t0 = time.perf_counter()

    def start(self, info: dict) -> None:
        self.finish()
        self.job = info.get("job", "pretrain")
        self.progress = self._prepare_bar() if self.job == "prepare" else self._pretrain_bar(info)
        self.progress.start()
        self.t0 = time.perf_counter()

    def _pretrain_bar(self, info: dict) -> Progress:
        self.console.print(
            f"model: {info['family']} {info['objective']}, {info['params'] / 1e6:.1f}M parameters; "
            f"bf16 {'on' if info['bf16'] else 'off'}; {'compiled; ' if info.get('compiled') else ''}"
            f"{info['threads']} threads; "
            f"{info['tokens_per_step']:,} tokens/step; budget {info['budget_s']:.0f} s"
        )
        bar = Progress(
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
        self.task = bar.add_task("pretrain", total=1.0, step=info.get("step", 0), loss="-", tps="-", val="-")
        return bar

    def _prepare_bar(self) -> Progress:
        bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]prepare"),
            TextColumn("{task.fields[files]:,} files"),
            TextColumn("{task.fields[mb]:,.1f} MB"),
            TextColumn("{task.fields[fps]:,.1f} files/s"),
            TextColumn("{task.fields[mbps]:,.2f} MB/s"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[name]}"),
            console=self.console,
            transient=True,
        )
        self.task = bar.add_task("prepare", total=None, files=0, mb=0.0, fps=0.0, mbps=0.0, name="")
        return bar

    def step(self, row: dict) -> None:
        if self.progress is None:
            return
        if self.job == "prepare":
            dt = max(time.perf_counter() - self.t0, 1e-9)
            mb = row["bytes"] / 2**20
            name = str(row.get("path", "")).rsplit("/", 1)[-1][:40]
            self.progress.update(
                self.task, files=row["files"], mb=mb, fps=row["files"] / dt, mbps=mb / dt, name=name
            )
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
        (self.progress.console if self.progress else self.console).print(text, markup=False, highlight=False)

    def finish(self) -> None:
        if self.progress is not None:
            if self.job != "prepare":
                self.progress.update(self.task, completed=1.0)
            self.progress.stop()
            self.progress = None
