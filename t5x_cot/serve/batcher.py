"""Dynamic batching: concurrent requests with the same decoding settings share one decode.

Requests wait in a bounded queue. The batching loop takes the oldest request, waits until
requests with the same key (decoding settings) fill `max_batch` rows or the oldest has
waited `max_wait_s`, then hands those rows (oldest first, never more than `max_batch`) to
`run_batch` on a single worker thread, so the event loop keeps accepting and answering
requests while the device decodes. Requests of other keys stay queued for the next round;
one decode runs at a time.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

RunBatch = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


class QueueFull(Exception):
    """The queue holds `max_queue` requests already."""


class BatcherClosed(Exception):
    """The batcher is stopping or stopped: no new requests."""


@dataclasses.dataclass(eq=False)
class _Job:
    key: Hashable
    rows: Sequence[Any]
    future: asyncio.Future
    enqueued: float


@dataclasses.dataclass
class BatchStats:
    """Rows per decode call actually formed (a histogram), and requests served."""

    batch_rows: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"batches": sum(self.batch_rows.values()), "requests": self.requests,
                "batch_rows": {str(k): v for k, v in sorted(self.batch_rows.items())}}


class DynamicBatcher:
    """Queue + batching loop; `await submit(key, rows)` returns `run_batch`'s results for
    `rows`, in order. Use inside a running event loop: `start()` then `await stop()`."""

    def __init__(self, run_batch: RunBatch, *, max_batch: int, max_wait_s: float, max_queue: int):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be positive and max_wait_s >= 0")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.stats = BatchStats()
        self._pending: list[_Job] = []
        self._arrived = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._task: asyncio.Task | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Refuse new requests, fail the queued ones, end the loop and the worker thread."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(BatcherClosed("server shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, key: Hashable, rows: Sequence[Any]) -> list[Any]:
        """Queue `rows` (1..max_batch of them) under `key`; raises QueueFull when full."""
        if not 1 <= len(rows) <= self.max_batch:
            raise ValueError(f"a request must have 1..{self.max_batch} rows, got {len(rows)}")
        if self._closed or self._task is None:
            raise BatcherClosed("the batcher is not running")
        if len(self._pending) >= self.max_queue:
            raise QueueFull(f"{len(self._pending)} requests are queued (limit {self.max_queue})")
        job = _Job(key, rows, asyncio.get_running_loop().create_future(), time.monotonic())
        self._pending.append(job)
        self._arrived.set()
        return await job.future

    def _rows_for(self, key: Hashable) -> int:
        return sum(len(j.rows) for j in self._pending if j.key == key)

    async def _wait_for_batch(self, oldest: _Job) -> None:
        deadline = oldest.enqueued + self.max_wait_s
        while self._rows_for(oldest.key) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take(self, key: Hashable) -> list[_Job]:
        taken, rows = [], 0
        for job in self._pending:
            if job.key == key and rows + len(job.rows) <= self.max_batch:
                taken.append(job)
                rows += len(job.rows)
        self._pending = [j for j in self._pending if j not in taken]
        return [j for j in taken if not j.future.done()]  # done: the client went away

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            oldest = self._pending[0]
            await self._wait_for_batch(oldest)
            jobs = self._take(oldest.key)
            if not jobs:
                continue
            rows = [row for job in jobs for row in job.rows]
            self.stats.batch_rows[len(rows)] += 1
            self.stats.requests += len(jobs)
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, oldest.key, rows)
            except Exception as error:  # pylint: disable=broad-except  # answered per request
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            start = 0
            for job in jobs:
                if not job.future.done():
                    job.future.set_result(list(results[start:start + len(job.rows)]))
                start += len(job.rows)
