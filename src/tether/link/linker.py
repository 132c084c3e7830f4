"""Runs the links of a workspace: one dialer per dialing sync config, backfill, housekeeping.

Restarts a dialer when its sync config changes; a failing link never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tether import aio, errors
from tether.actions import dialing, mirroring
from tether.actions.context import Context
from tether.actions.membership import Membership
from tether.link import exchange
from tether.link.dialer import Dialer
from tether.link.endpoint import Listener
from tether.link.protocol import KeyRing
from tether.statuses import Event
from tether.store import sync_configs

log = logging.getLogger(__name__)
HOUSEKEEPING_S = 1.0


class Linker:
    """Owns the dialers and the listener of one workspace."""

    def __init__(
        self,
        ctx: Context,
        *,
        long_poll_s: float,
        max_skew_s: float,
        env_proxies: dict[str, str] | None = None,
        membership: Membership | None = None,
        takeover_s: float = dialing.DEFAULT_TAKEOVER_S,
    ) -> None:
        """``membership``: given on a store several servers share, where each link is
        dialed by one of them at a time (actions/dialing.py); without it, this server
        dials every link. ``env_proxies``: the server's HTTPS_PROXY and friends."""
        self._ctx = ctx
        self._env_proxies = env_proxies or {}
        self._membership = membership
        self._takeover_s = takeover_s
        self._ring = KeyRing(ctx)
        self._long_poll_s = long_poll_s
        self._max_skew_s = max_skew_s
        self._health = exchange.Health(ctx)
        self.listener = Listener(
            ctx, self._ring, self._health, max_poll_s=long_poll_s, max_skew_s=max_skew_s
        )
        # name -> (config version, dialer lease (holder, epoch) or None, task)
        self._dialers: dict[str, tuple[float, tuple[str, int] | None, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._backfill_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._names: list[str] = []

    def message_counts(self, name: str) -> dict[str, int]:
        """Messages this process received on link ``name``, and how many were repeats."""
        return self._health.counts(name)

    async def start(self) -> None:
        self._ctx.events.listen(Event.CONFIG, lambda _name: self._wake_all())
        self._ctx.events.listen(Event.ACKED, lambda _name: self._backfill_wake.set())
        self._tasks = [
            asyncio.create_task(self._supervise(), name="link housekeeping"),
            asyncio.create_task(self._backfill(), name="link backfill"),
        ]

    def _wake_all(self) -> None:
        self._wake.set()
        self._backfill_wake.set()

    def release_long_polls(self) -> None:
        """Answer held long-poll requests now, so that a shutdown need not wait out their hold."""
        for name in self._names:
            self._ctx.events.publish(Event.OUTBOX, name)

    async def stop(self) -> None:
        await aio.stop_tasks(*(task for _, _, task in self._dialers.values()), *self._tasks)
        self._dialers.clear()
        holder = self._membership.process_id if self._membership is not None else None
        if holder is not None:
            # Released at once, so that another server takes the links over without waiting.
            with contextlib.suppress(errors.TetherError):
                await asyncio.to_thread(dialing.release, self._ctx, holder)

    async def _supervise(self) -> None:
        rounds = 0
        while True:
            self._wake.clear()
            try:
                await self._reconcile()
                rounds += 1
                if rounds % 60 == 0:
                    await asyncio.to_thread(exchange.prune_nonces, self._ctx, self._max_skew_s)
            except Exception:  # the linker's edge: record and go on
                log.exception("link housekeeping failed")
            await aio.wait_event(self._wake, HOUSEKEEPING_S)

    async def _backfill(self) -> None:
        """Mirror past executions (send_all_executions) as fast as the links take them.

        A step writes a page wherever the outbox has room; an ack that makes room wakes the
        next one (Event.ACKED), so the backfill runs at the link's pace.
        """
        while True:
            self._backfill_wake.clear()
            try:
                if await asyncio.to_thread(mirroring.backfill_step, self._ctx):
                    continue  # a page went in: there may be room for another at once
            except Exception:  # the backfill's edge: record and try again later
                log.exception("mirroring past executions failed")
            await aio.wait_event(self._backfill_wake, HOUSEKEEPING_S)

    async def _reconcile(self) -> None:
        """Start, restart and stop dialers to match the sync configs."""
        self._names, wanted = await asyncio.to_thread(self._versions)
        leases = await self._leases(wanted)
        for name, (version, lease, task) in list(self._dialers.items()):
            if wanted.get(name) != version or name not in leases or leases[name] != lease:
                task.cancel()
            if task.done() or task.cancelling():
                await aio.stop_tasks(task)
                del self._dialers[name]
        missing = [name for name in wanted if name not in self._dialers and name in leases]
        starting = await asyncio.to_thread(self._configs, missing) if missing else []
        for config in starting:
            if not (config.is_enabled and config.remote_url):
                continue  # changed since the versions were read; the next round sees it
            lease = leases[config.name]
            dialer = Dialer(
                self._ctx,
                self._ring,
                config,
                long_poll_s=self._long_poll_s,
                max_skew_s=self._max_skew_s,
                health=self._health,
                env_proxies=self._env_proxies,
                lease=lease,
            )
            self._dialers[config.name] = (
                config.updated_at,
                lease,
                asyncio.create_task(_guarded(dialer), name=f"dialer {config.name}"),
            )

    async def _leases(self, wanted: dict[str, float]) -> dict[str, tuple[str, int] | None]:
        """The links this server dials now, each with its dialer lease (None: no leases)."""
        if self._membership is None:
            return dict.fromkeys(wanted)
        holder = self._membership.process_id
        if holder is None or not wanted:
            return {}  # fencing (or nothing to dial): dial nothing
        held = await asyncio.to_thread(
            dialing.settle, self._ctx, holder, list(wanted), self._takeover_s
        )
        return {name: (holder, epoch) for name, epoch in held.items()}

    def _versions(self) -> tuple[list[str], dict[str, float]]:
        with self._ctx.db.read() as conn:
            return sync_configs.dialing_versions(conn)

    def _configs(self, names: list[str]) -> list[sync_configs.SyncConfig]:
        with self._ctx.db.read() as conn:
            found = (sync_configs.find(conn, name) for name in names)
            return [config for config in found if config is not None]


async def _guarded(dialer: Dialer) -> None:
    try:
        await dialer.run()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the dialer's edge: the supervisor restarts it
        if _is_lease_lost(exc):
            log.warning("%s", _lease_lost_message(exc))
            return
        log.exception("a dialer stopped unexpectedly; it will be restarted")


def _is_lease_lost(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_lease_lost(inner) for inner in exc.exceptions)
    return isinstance(exc, errors.DialerLeaseLost)


def _lease_lost_message(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return str(exc)
