"""Writes that come at once, made together: one call (one transaction) per batch.

The runner ends executions one at a time as their children report; a cancel of thousands
makes them all report at once, and one transaction each queued them on the store's write
lock. A `Batcher` writes the first item at once and everything that came meanwhile in the
next call, so a lone write waits for nothing and a flood takes few transactions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """Hands items to ``write`` (blocking, run in a worker thread) in batches of at most
    ``max_batch``; ``write`` returns, per item in order, None or the error that item met."""

    def __init__(
        self,
        write: Callable[[Sequence[T]], Sequence[Exception | None]],
        max_batch: int,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[Exception | None]]] = []
        self._writer: asyncio.Task[None] | None = None  # a task while items wait

    async def write(self, item: T) -> Exception | None:
        """Write ``item`` with whatever else waits; None, or the error it met (a failure of
        the whole call is every item's error)."""
        outcome: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, outcome))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        return await outcome

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            outcomes: list[Exception | None]
            try:
                outcomes = list(await asyncio.to_thread(self._write, [item for item, _ in batch]))
            except Exception as exc:  # the call failed them all: each caller says what now
                outcomes = [exc] * len(batch)
            for (_, outcome), failure in zip(batch, outcomes, strict=True):
                if not outcome.done():  # its caller was cancelled meanwhile (a stop)
                    outcome.set_result(failure)
