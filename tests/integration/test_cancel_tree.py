"""A cancel reaches every unended execution of a tree, generation by generation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tether.actions import executions as execution_actions
from tether.actions.context import Context
from tether.actions.events import Events
from tether.statuses import Status
from tether.store import executions
from tether.store.database import Database
from tether.store.executions import Execution

# more children than one statement asks about, so that their own children take two
WIDE = executions.PARENTS_PER_STATEMENT + 100


@pytest.fixture
def ctx(database_url: str) -> Iterator[Context]:
    db = Database(database_url)
    db.migrate()
    yield Context(db=db, events=Events(), workspace_name="test")
    db.dispose()


def add(ctx: Context, status: str, parent: Execution | None = None) -> Execution:
    item = Execution(
        id=str(uuid.uuid4()),
        name="x",
        flow_name="f",
        status=status,
        script="",
        script_sha256="",
        input_value={},
        output_value={},
        message=None,
        parent_id=None if parent is None else parent.id,
        origin=executions.LOCAL,
        sync_config=None,
        remote_execution_id=None,
        is_cancel_requested=False,
        max_runtime_s=None,
        worker=None,
        owner="admin",
        log_count=0,
        log_synced=0,
        created_at=time.time(),
        started_at=None,
        ended_at=None,
    )
    with ctx.transaction() as tx:
        executions.insert(tx.conn, item)
    return item


def test_a_cancel_reaches_every_generation_and_leaves_ended_branches_alone(ctx: Context) -> None:
    root = add(ctx, Status.RUNNING)
    running = [add(ctx, Status.RUNNING, root) for _ in range(WIDE)]
    queued_grandchildren = [add(ctx, Status.QUEUED, child) for child in running]
    great_grandchild = add(ctx, Status.RUNNING, running[-1])
    ended = add(ctx, Status.ENDED_SUCCESS, root)
    under_ended = add(ctx, Status.RUNNING, ended)  # an ended parent's child: left alone
    execution_actions.cancel(ctx, root.id)
    with ctx.db.read() as conn:
        found = executions.get_many(conn, [e.id for e in (root, *running, great_grandchild)])
        assert all(ex.is_cancel_requested for ex in found.values())
        assert all(not ex.is_ended for ex in found.values())
        for item in queued_grandchildren:
            ex = executions.get(conn, item.id)
            assert ex.status == Status.ENDED_CANCELLED, ex
            assert ex.message == "cancelled before it started"
        assert not executions.get(conn, under_ended.id).is_cancel_requested
