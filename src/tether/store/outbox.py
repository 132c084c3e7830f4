"""Outbox rows: per sync config, numbered messages still to deliver, and seen nonces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tether.store import sync_configs
from tether.store.schema import link_state, nonce, outbox


@dataclass(frozen=True)
class OutboxMessage:
    seq: int
    type: str
    body: dict[str, Any]


def append(conn: sa.Connection, name: str, type_: str, body: dict[str, Any], now: float) -> int:
    """Number and store one message for sync config ``name``; return its sequence number."""
    state = sync_configs.get_state(conn, name, for_update=True)
    seq = state.next_seq
    conn.execute(
        outbox.insert().values(sync_config=name, seq=seq, type=type_, body=body, created_at=now)
    )
    conn.execute(
        link_state.update().where(link_state.c.sync_config == name).values(next_seq=seq + 1)
    )
    return seq


def pending(conn: sa.Connection, name: str, limit: int, after: int = 0) -> list[OutboxMessage]:
    """The oldest messages not yet acknowledged by the other side, numbered above ``after``."""
    query = (
        sa.select(outbox.c.seq, outbox.c.type, outbox.c.body)
        .where(outbox.c.sync_config == name, outbox.c.seq > after)
        .order_by(outbox.c.seq)
        .limit(limit)
    )
    return [OutboxMessage(r.seq, r.type, r.body) for r in conn.execute(query)]


def has_after(conn: sa.Connection, name: str, after: int) -> bool:
    """Whether a message numbered above ``after`` waits for sync config ``name``."""
    query = sa.select(outbox.c.seq).where(outbox.c.sync_config == name, outbox.c.seq > after)
    return conn.execute(query.limit(1)).first() is not None


def depth(conn: sa.Connection, name: str) -> int:
    """How many messages wait for sync config ``name``."""
    query = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sync_config == name)
    return conn.execute(query).scalar_one()


def acknowledge(conn: sa.Connection, name: str, upto: int) -> None:
    """Forget messages the other side has applied, up to sequence ``upto``."""
    conn.execute(outbox.delete().where(outbox.c.sync_config == name, outbox.c.seq <= upto))


def remember_nonce(conn: sa.Connection, name: str, value: str, now: float) -> bool:
    """Record a nonce; False when it was already seen (a replay)."""
    seen = conn.execute(
        sa.select(nonce.c.nonce).where(nonce.c.sync_config == name, nonce.c.nonce == value)
    ).first()
    if seen is not None:
        return False
    conn.execute(nonce.insert().values(sync_config=name, nonce=value, seen_at=now))
    return True


def forget_nonces_before(conn: sa.Connection, cutoff: float) -> None:
    """Drop nonces older than the clock-skew window: their envelopes are stale anyway."""
    conn.execute(nonce.delete().where(nonce.c.seen_at < cutoff))
