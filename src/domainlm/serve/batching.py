"""Micro-batching: concurrent requests' texts are joined into one forward pass.

A request submits its rows (token-id lists) and awaits a future. One collector task per operation takes
the first waiting job plus every job already queued (and, if ``max_wait_s`` > 0, those arriving within
that time) up to ``max_batch`` rows, runs them on the single model thread and hands each job its slice
of the results. With the default ``max_wait_s`` = 0 nothing waits on purpose: while the model computes
one batch, the next requests queue up and form the next batch (no added latency at low load).

Rows are sorted by length and cut into chunks so padding stays small: a chunk holds at most
``max_batch`` rows and ``max_batch_tokens`` padded tokens, and its longest row is at most
``PAD_SLACK`` longer than its shortest. On a CPU a padded position costs as much as a real one, and a
single sequence of a small model already keeps 2 cores busy: benchmarks/serve_load.py measured
batches padded to their longest row at about half the throughput of no batching on 2 cores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

# a row joins a chunk only if it is at most 10% + 8 tokens longer than the chunk's shortest row
PAD_SLACK = (1.10, 8)


@dataclass
class _Job:
    rows: list
    future: asyncio.Future


class MicroBatcher:
    """Joins concurrent ``submit(rows)`` calls into calls of ``fn(all_rows) -> one result per row``."""

    def __init__(
        self,
        fn: Callable[[list], list],
        executor: Executor,
        max_batch: int = 32,
        max_wait_s: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
        max_batch_tokens: int = 4096,
    ):
        self.fn, self.executor, self.max_batch, self.max_wait_s = fn, executor, max_batch, max_wait_s
        self.max_batch_tokens = max_batch_tokens
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None

    def _ensure_started(self) -> asyncio.Queue:
        # created lazily inside the running loop (TestClient and uvicorn each bring their own loop)
        loop = asyncio.get_running_loop()
        if (
            self._queue is None
            or self._task is None
            or self._task.done()
            or self._task.get_loop() is not loop
        ):
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._collect(self._queue))
        return self._queue

    async def submit(self, rows: list) -> list:
        """Results for ``rows``, computed in some batch together with other requests' rows."""
        fut = asyncio.get_running_loop().create_future()
        self._ensure_started().put_nowait(_Job(rows, fut))
        return await fut

    async def _collect(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await queue.get()]
            n = len(jobs[0].rows)
            deadline = time.monotonic() + self.max_wait_s
            while n < self.max_batch:
                if not queue.empty():
                    job = queue.get_nowait()
                else:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        break
                jobs.append(job)
                n += len(job.rows)
            jobs = [j for j in jobs if not j.future.done()]  # callers that timed out or went away
            if not jobs:
                continue
            await self._run(loop, jobs)

    def chunks(self, lengths: list[int]) -> list[list[int]]:
        """Row indices sorted by length, cut at ``max_batch`` rows or ``max_batch_tokens`` padded tokens."""
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        out: list[list[int]] = [[]]
        for i in order:
            cur = out[-1]
            # sorted ascending, so row i is the longest so far: padded size = (len(cur) + 1) * lengths[i]
            too_long = cur and lengths[i] > PAD_SLACK[0] * lengths[cur[0]] + PAD_SLACK[1]
            if cur and (
                too_long or len(cur) >= self.max_batch or (len(cur) + 1) * lengths[i] > self.max_batch_tokens
            ):
                out.append([i])
            else:
                cur.append(i)
        return out

    async def _run(self, loop, jobs: list[_Job]) -> None:
        rows = [r for j in jobs for r in j.rows]
        results: list[Any] = [None] * len(rows)
        try:
            for idx in self.chunks([len(r) for r in rows]):
                out = await loop.run_in_executor(self.executor, self.fn, [rows[i] for i in idx])
                for i, o in zip(idx, out, strict=True):
                    results[i] = o
                if self.on_batch:
                    self.on_batch(len(idx))
        except Exception as e:  # a model failure fails these requests (500), not the collector
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(e)
            return
        at = 0
        for j in jobs:
            part = results[at : at + len(j.rows)]
            at += len(j.rows)
            if not j.future.done():
                j.future.set_result(part)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, RuntimeError):
                pass
