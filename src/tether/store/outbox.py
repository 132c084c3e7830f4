"""Outbox rows: per sync config, numbered messages still to deliver, and seen nonces."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import sqlalchemy as sa

from tether.messages import Message, dump
from tether.store import sync_configs
from tether.store.schema import link_state, nonce, outbox

# Statements built once; see tether.store.statements.
_FOR_NAME = outbox.c.sync_config == sa.bindparam("b_name")
_INSERT = outbox.insert()
_BUMP_NEXT_SEQ = link_state.update().where(link_state.c.sync_config == sa.bindparam("b_name"))
FIRST_PAGE = 2  # pending messages selected at first (a batch often takes one 1 MB update)
_COLUMNS = (outbox.c.seq, outbox.c.type, sa.cast(outbox.c.body, sa.Text))  # see JSONText
_SELECT_PENDING = (
    sa.select(*_COLUMNS)
    .where(_FOR_NAME, outbox.c.seq > sa.bindparam("b_after"))
    .order_by(outbox.c.seq)
    .limit(sa.bindparam("b_limit", type_=sa.Integer))
)
_SELECT_ONE_AFTER = (
    sa.select(outbox.c.seq).where(_FOR_NAME, outbox.c.seq > sa.bindparam("b_after")).limit(1)
)
_COUNT = sa.select(sa.func.count()).select_from(outbox).where(_FOR_NAME)
_ACKNOWLEDGE = outbox.delete().where(_FOR_NAME, outbox.c.seq <= sa.bindparam("b_upto"))
_SELECT_NONCE = sa.select(nonce.c.nonce).where(
    nonce.c.sync_config == sa.bindparam("b_name"), nonce.c.nonce == sa.bindparam("b_nonce")
)
_INSERT_NONCE = nonce.insert()
_FORGET_NONCES = nonce.delete().where(nonce.c.seen_at < sa.bindparam("b_cutoff"))


def append(conn: sa.Connection, name: str, type_: str, body_json: str, now: float) -> int:
    """Number and store one message (its body as ``messages.dump`` wrote it) for sync config
    ``name``; return its sequence number."""
    state = sync_configs.get_state(conn, name, for_update=True)
    seq = state.next_seq
    row = {"sync_config": name, "seq": seq, "type": type_, "body": body_json, "created_at": now}
    conn.execute(_INSERT, row)
    conn.execute(_BUMP_NEXT_SEQ, {"b_name": name, "next_seq": seq + 1})
    return seq


def rewrite_pending(
    conn: sa.Connection, name: str, type_: str, execution_id: str, new: tuple[str, dict[str, Any]]
) -> bool:
    """Replace the unacknowledged ``type_`` message about ``execution_id`` with ``new`` (type
    and body), keeping its sequence number; False when none waits."""
    query = (
        outbox.update()
        .where(
            outbox.c.sync_config == name,
            outbox.c.type == type_,
            outbox.c.body["execution_id"].as_string() == execution_id,
        )
        .values(type=new[0], body=dump(new[1]))
    )
    return conn.execute(query).rowcount > 0


def find(conn: sa.Connection, name: str, seq: int) -> Message | None:
    """Message ``seq`` of sync config ``name``, if it still waits."""
    query = sa.select(*_COLUMNS).where(outbox.c.sync_config == name, outbox.c.seq == seq)
    row = conn.execute(query).first()
    return None if row is None else Message.from_json(*row)


def rewrite(conn: sa.Connection, name: str, seq: int, type_: str, body: dict[str, Any]) -> None:
    """Replace message ``seq`` of sync config ``name``, keeping its number (a gap would stall
    the link)."""
    query = (
        outbox.update()
        .where(outbox.c.sync_config == name, outbox.c.seq == seq)
        .values(type=type_, body=dump(body))
    )
    conn.execute(query)


def pending(conn: sa.Connection, name: str, limit: int, after: int = 0) -> list[Message]:
    """The oldest messages not yet acknowledged by the other side, numbered above ``after``."""
    return list(pending_one_by_one(conn, name, limit, after))


def pending_one_by_one(
    conn: sa.Connection, name: str, limit: int, after: int = 0
) -> Generator[Message, None, None]:
    """The oldest messages not yet acknowledged by the other side, numbered above ``after``,
    read one at a time as the caller takes them (their bodies as text, parsed only if asked).

    A caller that stops early (an envelope is full) reads no further: with a backlog of log
    updates of 1 MB each, reading all 500 to send one cost the sending side most of its
    CPU (bench/README.md, biglog). Close it (``contextlib.closing``) when stopping early.
    They are selected in pages, FIRST_PAGE rows and then twice as many each time: psycopg
    fetches a whole result at once, so one select of 500 such updates held 500 MB.
    """
    page = FIRST_PAGE
    while limit > 0:
        rows = conn.execute(
            _SELECT_PENDING, {"b_name": name, "b_after": after, "b_limit": min(page, limit)}
        )
        count = 0
        try:
            for row in rows:
                count += 1
                message = Message.from_json(*row)
                after = message.seq
                yield message
        finally:
            rows.close()
        if count < min(page, limit):
            return  # none left
        limit -= count
        page *= 2


def has_after(conn: sa.Connection, name: str, after: int) -> bool:
    """Whether a message numbered above ``after`` waits for sync config ``name``."""
    return conn.execute(_SELECT_ONE_AFTER, {"b_name": name, "b_after": after}).first() is not None


def depth(conn: sa.Connection, name: str) -> int:
    """How many messages wait for sync config ``name``."""
    return conn.execute(_COUNT, {"b_name": name}).scalar_one()


def acknowledge(conn: sa.Connection, name: str, upto: int) -> None:
    """Forget messages the other side has applied, up to sequence ``upto``."""
    conn.execute(_ACKNOWLEDGE, {"b_name": name, "b_upto": upto})


def remember_nonce(conn: sa.Connection, name: str, value: str, now: float) -> bool:
    """Record a nonce; False when it was already seen (a replay)."""
    seen = conn.execute(_SELECT_NONCE, {"b_name": name, "b_nonce": value}).first()
    if seen is not None:
        return False
    conn.execute(_INSERT_NONCE, {"sync_config": name, "nonce": value, "seen_at": now})
    return True


def forget_nonces_before(conn: sa.Connection, cutoff: float) -> None:
    """Drop nonces older than the clock-skew window: their envelopes are stale anyway."""
    conn.execute(_FORGET_NONCES, {"b_cutoff": cutoff})
