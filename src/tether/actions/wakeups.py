"""Wake-ups across the processes of one PostgreSQL store, and the polls behind them.

Other processes' events arrive by LISTEN/NOTIFY (store/notices.py) and are published here
as if they were this process's own. Notifications can be lost (a LISTEN connection that
broke): each time listening starts again every waiter is woken to read the store, and a
poll announces every link whose outbox moved, so that nothing waits for a wake-up that
never comes. Claims, waits in `this.flow` and cancels have polls of their own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from tether import aio
from tether.actions.context import Context
from tether.statuses import Event
from tether.store import notices, sync_configs

log = logging.getLogger(__name__)

NEW_LINK_HEAD = (1, 0)  # next outbox sequence, acked sequence
BACKSTOP_S = 2.0  # a link whose outbox moved is woken at most this late without a notice
# What a listener that was away announces: every cached value may be stale, and every
# claimer and link may have work.
MISSED_KINDS = (Event.QUEUED, Event.CONFIG, Event.USERS, Event.ACKED)


def origin_token() -> str:
    """A fresh token that marks this process's notifications (it skips its own)."""
    return uuid.uuid4().hex


class Wakeups:
    """Hands other processes' events to this process's hub, and polls behind them."""

    def __init__(self, ctx: Context) -> None:
        assert ctx.origin is not None, "the context must carry this process's origin token"
        self._ctx = ctx
        self._listener = notices.Listener(
            ctx.db.url, ctx.origin, ctx.events.publish, self._listening
        )
        self._heads: dict[str, tuple[int, int]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._heads = await asyncio.to_thread(self._read_heads)
        self._listener.start()
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        await aio.stop_tasks(self._task)
        await asyncio.to_thread(self._listener.stop)

    def _listening(self) -> None:
        """Listening (again): whatever was announced meanwhile was missed."""
        self._ctx.events.wake_all(MISSED_KINDS)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(BACKSTOP_S)
            try:
                heads = await asyncio.to_thread(self._read_heads)
            except Exception as exc:  # the loop's edge: the store may be out of reach
                log.warning("polling the links' outboxes failed: %s", exc)
                continue
            for name, head in heads.items():
                # A link first seen here counts from a new link's head: nothing to do yet.
                if self._heads.get(name, NEW_LINK_HEAD) != head:
                    self._ctx.events.publish(Event.OUTBOX, name)
            self._heads = heads

    def _read_heads(self) -> dict[str, tuple[int, int]]:
        with self._ctx.db.read() as conn:
            return sync_configs.heads(conn)
