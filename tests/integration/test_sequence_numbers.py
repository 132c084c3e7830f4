"""Sequence numbers are 64-bit in the store: a busy link must not overflow them in months."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from tether.actions.context import Context
from tether.actions.events import Events
from tether.link import configs
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


def test_sequence_numbers_overflowed_32_bits_on_a_busy_link(db: Database) -> None:
    """A link whose numbering passed 2**31 (about 80 days at 300 messages a second) goes on,
    also on a store migrated from the first schema with messages in it."""
    migrate_to(db, "0003")
    ctx = Context(db=db, events=Events(), workspace_name="test")
    configs.create(ctx, {"name": "edge"})
    with ctx.transaction() as tx:
        outbox.append(tx.conn, "edge", "execution.cancel", {"execution_id": "x"}, 1.0)
    migrate_to(db, "head")
    with ctx.transaction() as tx:
        sync_configs.update_state(
            tx.conn, "edge", next_seq=BEYOND_32_BITS, applied_seq=BEYOND_32_BITS - 1
        )
        seq = outbox.append(tx.conn, "edge", "execution.cancel", {"execution_id": "y"}, 2.0)
    with ctx.db.read() as conn:
        pending = outbox.pending(conn, "edge", 10, after=2**31)
        state = sync_configs.get_state(conn, "edge")
        stored = conn.execute(sa.select(schema.outbox.c.seq).order_by("seq")).scalars().all()
    assert seq == BEYOND_32_BITS
    assert [m.seq for m in pending] == [BEYOND_32_BITS]
    assert state.next_seq == BEYOND_32_BITS + 1
    assert state.applied_seq == BEYOND_32_BITS - 1
    assert stored == [1, BEYOND_32_BITS]
