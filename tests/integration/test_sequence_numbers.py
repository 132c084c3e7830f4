"""Sequence numbers are 64-bit in the store: a busy link must not overflow them in months."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from tether.actions.context import Context
from tether.actions.events import Events
from tether.messages import dump
from tether.store import database, outbox, schema, sync_configs
from tether.store.database import Database

BEYOND_32_BITS = 2**31 + 7


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    store = Database(database_url)
    yield store
    store.dispose()


def migrate_to(db: Database, revision: str) -> None:
    with db.engine.begin() as conn:
        config = database.alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def add_link_in_columns_of_0003(conn: sa.Connection) -> None:
    """A sync config and its state as revision 0003 stored them (its columns only: the
    current code writes columns that later revisions added)."""
    config = {
        "name": "edge",
        "is_enabled": True,
        "role": "controlled",
        "verify_ssl": True,
        "remote_public_keys": [],
        "send_all_executions": False,
        "allow_onward_remote": False,
        "created_at": 1.0,
        "updated_at": 1.0,
    }
    conn.execute(schema.sync_config.insert(), config)
    state = {"sync_config": "edge", "state": "connecting", "next_seq": 1, "acked_seq": 0}
    conn.execute(schema.link_state.insert(), {**state, "applied_seq": 0, "backfill_done": 0})


def test_sequence_numbers_overflowed_32_bits_on_a_busy_link(db: Database) -> None:
    """A link whose numbering passed 2**31 (about 80 days at 300 messages a second) goes on,
    also on a store migrated from the first schema with messages in it."""
    migrate_to(db, "0003")
    ctx = Context(db=db, events=Events(), workspace_name="test")
    with ctx.transaction() as tx:
        add_link_in_columns_of_0003(tx.conn)
        outbox.append(tx.conn, "edge", "execution.cancel", dump({"execution_id": "x"}), 1.0)
    migrate_to(db, "head")
    with ctx.transaction() as tx:
        sync_configs.update_state(
            tx.conn, "edge", next_seq=BEYOND_32_BITS, applied_seq=BEYOND_32_BITS - 1
        )
        seq = outbox.append(tx.conn, "edge", "execution.cancel", dump({"execution_id": "y"}), 2.0)
    with ctx.db.read() as conn:
        pending = outbox.pending(conn, "edge", 10, after=2**31)
        state = sync_configs.get_state(conn, "edge")
        stored = conn.execute(sa.select(schema.outbox.c.seq).order_by("seq")).scalars().all()
    assert seq == BEYOND_32_BITS
    assert [m.seq for m in pending] == [BEYOND_32_BITS]
    assert state.next_seq == BEYOND_32_BITS + 1
    assert state.applied_seq == BEYOND_32_BITS - 1
    assert stored == [1, BEYOND_32_BITS]
