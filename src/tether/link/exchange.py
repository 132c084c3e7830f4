"""The store side of one exchange: what to send next, and recording how the link is doing.

Blocking functions, called in worker threads by the dialer and the listener endpoint.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from tether.actions import events, outgoing
from tether.actions.context import Context
from tether.messages import Message
from tether.statuses import Event
from tether.store import database, outbox, sync_configs
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


def pending_batch(ctx: Context, name: str, after: int = 0) -> tuple[LinkState, list[Message]]:
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


class Deliveries:
    """What a listener's answers delivered on each link that the dialer has not acked yet.

    Every answer used to carry all the unacked messages, so an answer to a request that was
    on its way while the previous answer was being applied delivered them once more (10-40 %
    of the messages of a burst arrived twice). A dialer of protocol 2 says in each hello up
    to which message it wants the unacked ones again (``resend``; 0 for none): all of them
    when it has just started or lost an answer, the ones above a gap it could not apply
    (answers that overtook each other) once the gap is filled. Otherwise an answer carries
    only the messages above the last one delivered (the floor). Nothing depends on the floor
    for safety: dropping it only repeats messages, which the receiver skips, and it is
    dropped anyway when nothing was delivered above it for FLOOR_TTL_S (after a loss that no
    request reported). Kept in memory: a restart, or another server of the workspace,
    delivers from the ack again.
    """

    FLOOR_TTL_S = 10.0

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()  # guards the dicts; each link's lock guards its floor
        self._locks: dict[str, threading.Lock] = {}
        # name -> (the config's version, highest message delivered, when): a sync config
        # changed or made anew (its sequence starts again) delivers from the ack
        self._floors: dict[str, tuple[float, int, float]] = {}

    def floor(self, config: SyncConfig, resend: int | None) -> int:
        """The highest message an answer on ``config`` need not deliver: 0 for a dialer that
        wants some again, or that speaks protocol 1 (``resend`` None)."""
        if resend != 0:
            return 0
        return self._floor(config)

    def batch(self, config: SyncConfig, resend: int | None) -> tuple[LinkState, list[Message]]:
        """The link's state and the next messages an answer on ``config`` carries; blocking."""
        name = config.name
        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:  # two answers on one link never choose the same messages
            floor = self._floor(config)
            if resend is None:  # protocol 1: every unacked message, every time
                return pending_batch(self._ctx, name)
            if resend == 0:
                state, batch = pending_batch(self._ctx, name, floor)
            else:
                state, batch = pending_batch(self._ctx, name)
                if resend < floor:
                    # Only the ones wanted: those above them are on their way already, and
                    # a batch must not skip any (the receiver stops at a gap).
                    batch = [message for message in batch if message.seq <= resend]
            if batch and batch[-1].seq > floor:
                with self._lock:
                    self._floors[name] = (config.updated_at, batch[-1].seq, self._ctx.now())
        return state, batch

    def _floor(self, config: SyncConfig) -> int:
        with self._lock:
            version, delivered, at = self._floors.get(config.name, (0.0, 0, 0.0))
        is_current = version == config.updated_at and self._ctx.now() - at <= self.FLOOR_TTL_S
        return delivered if is_current else 0


def _batch(
    conn: database.Connection, name: str, after: int
) -> tuple[LinkState, list[Message], int]:
    """The state, the batch, and the size of its first message."""
    state = sync_configs.get_state(conn, name)
    batch: list[Message] = []
    size = first_size = 0
    with contextlib.closing(outbox.pending_one_by_one(conn, name, MAX_MESSAGES, after)) as pending:
        for message in pending:
            size += message.body_bytes
            if batch and size > MAX_BATCH_BYTES:
                break
            batch.append(message)
            first_size = first_size or size
    return state, batch, first_size


def is_full(messages: Sequence[Message]) -> bool:
    """Whether a batch of messages may have left more behind: it filled most of an envelope."""
    if len(messages) >= MAX_MESSAGES:
        return True
    size = sum(m.body_bytes for m in messages)
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
