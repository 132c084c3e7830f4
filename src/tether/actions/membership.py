"""This process's membership of the workspace: its lease, its fencing, and the reaper.

The lease is renewed on the database's clock. Locally the process counts its lease as held
only until a fraction of the lease has passed since the start of its last renewal that
succeeded (on the monotonic clock, which also runs while the process is stopped), so that it
stops writing before any other process may count it dead. It never waits on the store to
learn that it lost its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tether import aio
from tether.actions import processes
from tether.actions.context import Context

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30.0
RENEWALS_PER_LEASE = 6  # a 30 s lease is renewed every 5 s
# The share of the lease this process counts on after a renewal began: the rest is the
# margin between it stopping its work and any other process reaping that work.
HELD_FRACTION = 0.75

Fence = Callable[[], Awaitable[None]]
T = TypeVar("T")


class Membership:
    """Registers this process, keeps its lease, fences it when the lease is lost, rejoins
    under a new id, and ends the work of processes that lost theirs."""

    def __init__(
        self,
        ctx: Context,
        *,
        kind: str,
        name: str | None,
        lease_s: float = DEFAULT_LEASE_S,
        is_alone: bool = False,
        alone_message: str = "",
    ) -> None:
        self._ctx = ctx
        self._kind = kind
        self._name = name
        self.lease_s = lease_s
        self._interval_s = lease_s / RENEWALS_PER_LEASE
        # A store only one process uses: at start every execution still running is ended.
        self._is_alone = is_alone
        self._alone_message = alone_message
        self.process_id: str | None = None
        self._held_until = 0.0  # time.monotonic() until which the lease counts as held
        self._fences: list[Fence] = []
        self._task: asyncio.Task[None] | None = None
        self._renewal: asyncio.Task[bool] | None = None
        self._reaping: asyncio.Task[None] | None = None
        self._fencing: asyncio.Task[None] | None = None
        # A thread of its own: a renewal must never queue behind the claims and log writes
        # that fill the shared worker threads in a burst.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tether-lease")

    def on_lost(self, fence: Fence) -> None:
        """Await ``fence()`` whenever the lease is lost, before the process rejoins."""
        self._fences.append(fence)

    def is_held(self) -> bool:
        """Whether this process may still act on its executions (no store access)."""
        return self.process_id is not None and time.monotonic() < self._held_until

    def check(self) -> bool:
        """``is_held()``, and when it is not, start fencing at once (not at the next tick)."""
        if self.is_held():
            return True
        if self.process_id is not None:
            self._start_fencing()
        return False

    async def start(self) -> None:
        """Join the registry, end what earlier processes left, and begin renewing."""
        await self._join()
        assert self.process_id is not None
        if self._is_alone:
            ended = await asyncio.to_thread(
                processes.take_over, self._ctx, self.process_id, self._alone_message
            )
            if ended:
                log.warning("ended %d executions interrupted by a restart", len(ended))
        else:
            await self._reap()
        self._task = asyncio.create_task(self._keep())

    async def stop(self) -> None:
        """Stop renewing and leave the registry (the caller ended its executions first)."""
        await aio.stop_tasks(self._task, self._renewal, self._reaping, self._fencing)
        if self.process_id is not None:
            with contextlib.suppress(Exception):  # the lease runs out by itself
                await self._call(processes.leave, self._ctx, self.process_id)
            self.process_id = None
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, functools.partial(function, *args, **kwargs)
        )

    async def _join(self) -> None:
        started = time.monotonic()
        joined = await self._call(
            processes.join, self._ctx, kind=self._kind, name=self._name, lease_s=self.lease_s
        )
        self._held_until = started + self.lease_s * HELD_FRACTION
        self.process_id = joined.id
        log.info("joined the workspace as %s %s (lease %g s)", self._kind, joined.id, self.lease_s)

    async def _keep(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception:  # the loop's edge: record and go on; the lease decides
                log.exception("keeping this process's lease failed")
            await asyncio.sleep(self._interval_s)

    async def _tick(self) -> None:
        if self._fencing is not None:
            if not self._fencing.done():
                return
            self._fencing = None
        if not self.check():
            return
        # Neither waits here: a store out of reach must not keep the next check from running.
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.create_task(self._renew())
        if self._reaping is None or self._reaping.done():
            self._reaping = asyncio.create_task(self._reap())

    async def _renew(self) -> bool:
        process_id = self.process_id
        if process_id is None:
            return False
        started = time.monotonic()
        try:
            is_renewed = await self._call(processes.renew, self._ctx, process_id)
        except Exception as exc:  # the store is out of reach: the lease may still run out
            log.warning("renewing the lease of %s failed: %s", process_id, exc)
            return False
        if is_renewed and self.process_id == process_id:
            self._held_until = max(self._held_until, started + self.lease_s * HELD_FRACTION)
        elif not is_renewed:
            log.error("the lease of %s ran out before it was renewed", process_id)
            self._held_until = 0.0
            self.check()
        return is_renewed

    async def _reap(self) -> None:
        try:
            ended = await asyncio.to_thread(processes.reap, self._ctx)
        except Exception as exc:  # the store is out of reach: the next tick tries again
            log.warning("ending the executions of lost processes failed: %s", exc)
            return
        if ended:
            log.warning("ended %d executions of processes that lost their lease", len(ended))

    def _start_fencing(self) -> None:
        if self._fencing is None or self._fencing.done():
            self._fencing = asyncio.create_task(self._fence())

    async def _fence(self) -> None:
        """Stop all work of the old id, then rejoin under a new one (retried each tick)."""
        lost, self.process_id = self.process_id, None
        log.error("this process lost its lease as %s: killing its executions and rejoining", lost)
        for fence in self._fences:
            await fence()
        while self.process_id is None:
            try:
                await self._join()
            except Exception as exc:  # the store is out of reach: try again
                log.warning("rejoining the workspace failed: %s", exc)
                await asyncio.sleep(self._interval_s)
