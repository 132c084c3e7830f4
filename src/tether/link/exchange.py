"""The store side of one exchange: what to send next, and recording how the link is doing.

Blocking functions, called in worker threads by the dialer and the listener endpoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from tether.actions import events, outgoing
from tether.actions.context import Context
from tether.statuses import Event
from tether.store import database, outbox, sync_configs
from tether.store.outbox import OutboxMessage
from tether.store.sync_configs import LinkState, SyncConfig

MAX_MESSAGES = 500
MAX_BATCH_BYTES = 1024 * 1024


class ConfigCache:
    """Sync configs as read from the store, kept until a change of one is announced.

    Every request on a link needs its config; configs change only through this workspace's
    own actions, which announce each change (Event.CONFIG) after its commit.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._configs: events.KeptUntilChanged[SyncConfig | None] = events.KeptUntilChanged(
            ctx.events, Event.CONFIG
        )

    def find(self, name: str) -> SyncConfig | None:
        """The sync config named ``name`` (None when there is none); blocking when not kept."""
        is_kept, config = self._configs.kept(name)
        if is_kept:
            return config
        return self._configs.read(name, lambda: self._read(name))

    def _read(self, name: str) -> SyncConfig | None:
        with self._ctx.db.read() as conn:
            return sync_configs.find(conn, name)


def pending_batch(ctx: Context, name: str, after: int = 0) -> tuple[LinkState, list[OutboxMessage]]:
    """The link's state, and the oldest unacknowledged messages above ``after`` that fit one
    envelope (messages up to ``after`` are on their way in other requests)."""
    with ctx.db.read() as conn:
        state, batch, first_size = _batch(conn, name, after)
    if first_size > outgoing.MAX_BODY_BYTES:
        # Only an earlier version wrote messages this large: sent, it would be refused for
        # ever and hold up every message behind it. It gives way to one that fits.
        outgoing.replace_unsendable(ctx, name, batch[0].seq)
        with ctx.db.read() as conn:
            state, batch, _ = _batch(conn, name, after)
    return state, batch


def _batch(
    conn: database.Connection, name: str, after: int
) -> tuple[LinkState, list[OutboxMessage], int]:
    """The state, the batch, and the size of its first message."""
    state = sync_configs.get_state(conn, name)
    pending = outbox.pending(conn, name, MAX_MESSAGES, after)
    batch: list[OutboxMessage] = []
    size = first_size = 0
    for message in pending:
        size += len(json.dumps(message.body, default=str))
        if batch and size > MAX_BATCH_BYTES:
            break
        batch.append(message)
        first_size = first_size or size
    return state, batch, first_size


def is_full(messages: Sequence[Any]) -> bool:
    """Whether a batch of messages may have left more behind: it filled most of an envelope."""
    if len(messages) >= MAX_MESSAGES:
        return True
    size = sum(len(json.dumps(m.body, default=str)) for m in messages)
    # A batch stops before the message that would overflow it, so a full one is near the cap;
    # half of it is a safe guess (a miss costs one interval of latency, never a message).
    return size > MAX_BATCH_BYTES // 2


def success_values(now: float, their_hello: dict[str, Any] | None) -> dict[str, Any]:
    """The link-state columns that say a link is connected, as of ``now``."""
    hello = their_hello or {}
    return {
        "state": sync_configs.CONNECTED,
        "last_error": None,
        "failing_since": None,
        "last_exchange_at": now,
        "remote_workspace": hello.get("workspace"),
        "remote_role": hello.get("role"),
    }


def record_failure(ctx: Context, name: str, error: str) -> None:
    """Mark the link failing with ``error`` in words, keeping the time it started failing."""
    with ctx.transaction() as tx:
        if sync_configs.find(tx.conn, name) is None:
            return
        state = sync_configs.get_state(tx.conn, name)
        since = (
            state.failing_since
            if state.state == sync_configs.FAILING and state.failing_since
            else ctx.now()
        )
        sync_configs.update_state(
            tx.conn, name, state=sync_configs.FAILING, last_error=error, failing_since=since
        )


def prune_nonces(ctx: Context, window_s: float) -> None:
    with ctx.transaction() as tx:
        outbox.forget_nonces_before(tx.conn, ctx.now() - 2 * window_s)


class Health:
    """Records how a link is doing, writing a success at most once a second per link.

    Every exchange succeeding would otherwise cost a write transaction on each side.
    """

    RECORD_EVERY_S = 1.0

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._recorded: dict[str, tuple[float, float]] = {}  # name -> (config version, time)
        # name -> [messages received, of which repeats], since this process started
        self._counts: dict[str, list[int]] = {}
        self._counts_lock = threading.Lock()

    def counted(self, name: str, received: int, repeats: int) -> None:
        """An envelope of ``received`` messages came in, ``repeats`` of them applied before."""
        with self._counts_lock:
            counts = self._counts.setdefault(name, [0, 0])
            counts[0] += received
            counts[1] += repeats

    def counts(self, name: str) -> dict[str, int]:
        """Messages received on the link since this process started, and how many repeated."""
        with self._counts_lock:
            received, repeats = self._counts.get(name, [0, 0])
        return {"received": received, "repeats": repeats}

    def success_values(
        self, config: SyncConfig, their_hello: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The link-state columns a good exchange writes, when one is due; else None.

        For a caller that writes them in its own transaction (the one applying the
        exchange), and then calls ``recorded``: one write transaction per exchange, not two.
        """
        last = self._recorded.get(config.name)
        now = self._ctx.now()
        if last and last[0] == config.updated_at and now - last[1] < self.RECORD_EVERY_S:
            return None
        return success_values(now, their_hello)

    def recorded(self, config: SyncConfig) -> None:
        """A success of ``config`` was written just now."""
        self._recorded[config.name] = (config.updated_at, self._ctx.now())

    def failure(self, name: str, error: str) -> None:
        self._recorded.pop(name, None)
        record_failure(self._ctx, name, error)
