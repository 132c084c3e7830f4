"""The store side of one exchange: what to send next, and recording how the link is doing.

Blocking functions, called in worker threads by the dialer and the listener endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tether.actions.context import Context
from tether.store import outbox, sync_configs
from tether.store.outbox import OutboxMessage
from tether.store.sync_configs import LinkState, SyncConfig

MAX_MESSAGES = 500
MAX_BATCH_BYTES = 1024 * 1024


def load(ctx: Context, name: str) -> tuple[SyncConfig | None, LinkState | None]:
    with ctx.db.read() as conn:
        config = sync_configs.find(conn, name)
        return config, sync_configs.get_state(conn, name) if config else None


def next_batch(ctx: Context, name: str) -> tuple[SyncConfig, LinkState, list[OutboxMessage]]:
    """The config, its state, and the oldest unacknowledged messages that fit one envelope."""
    with ctx.db.read() as conn:
        config = sync_configs.get(conn, name)
        state = sync_configs.get_state(conn, name)
        pending = outbox.pending(conn, name, MAX_MESSAGES)
    batch: list[OutboxMessage] = []
    size = 0
    for message in pending:
        size += len(json.dumps(message.body, default=str))
        if batch and size > MAX_BATCH_BYTES:
            break
        batch.append(message)
    return config, state, batch


def is_full(messages: Sequence[Any]) -> bool:
    """Whether a batch of messages may have left more behind: it filled most of an envelope."""
    if len(messages) >= MAX_MESSAGES:
        return True
    size = sum(len(json.dumps(m.body, default=str)) for m in messages)
    # A batch stops before the message that would overflow it, so a full one is near the cap;
    # half of it is a safe guess (a miss costs one interval of latency, never a message).
    return size > MAX_BATCH_BYTES // 2


def has_pending(ctx: Context, name: str) -> bool:
    with ctx.db.read() as conn:
        return outbox.depth(conn, name) > 0


def record_success(ctx: Context, name: str, their_hello: dict | None) -> None:
    """Mark the link connected after a good exchange."""
    hello = their_hello or {}
    with ctx.transaction() as tx:
        if sync_configs.find(tx.conn, name) is None:
            return
        sync_configs.update_state(
            tx.conn,
            name,
            state=sync_configs.CONNECTED,
            last_error=None,
            failing_since=None,
            last_exchange_at=ctx.now(),
            remote_workspace=hello.get("workspace"),
            remote_role=hello.get("role"),
        )


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
