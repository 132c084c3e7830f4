"""The process registry on SQLite and PostgreSQL: leases on the database's clock, the reaper
ending a lost process's executions (and only those), and a single-process store's start."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tether.actions import executions as execution_actions
from tether.actions import flows, processes
from tether.actions.context import Context
from tether.actions.events import Events
from tether.statuses import Event, Status
from tether.store import executions, schema
from tether.store import processes as process_rows
from tether.store.database import Database

QUICK = "def handler(system, this):\n    pass\n"


@pytest.fixture
def ctx(database_url: str) -> Iterator[Context]:
    db = Database(database_url)
    db.migrate()
    context = Context(db=db, events=Events(), workspace_name="test")
    flows.create(context, "f", QUICK)
    yield context
    db.dispose()


def claimed_by(ctx: Context, process_id: str) -> str:
    """A new execution, claimed by ``process_id``."""
    execution_actions.start(ctx, flow_name="f", owner="admin")
    [ex] = execution_actions.claim_some(ctx, process_id, 1)
    return ex.id


def age(ctx: Context, process_id: str, seconds: float) -> None:
    """Move a process's last heartbeat ``seconds`` into the past."""
    column = schema.process.c.heartbeat_at
    with ctx.db.begin() as conn:
        conn.execute(
            schema.process.update()
            .where(schema.process.c.id == process_id)
            .values(heartbeat_at=column - seconds)
        )


def test_the_reaper_ends_only_the_executions_of_a_process_whose_lease_ran_out(
    ctx: Context,
) -> None:
    lost = processes.join(ctx, kind="worker", name="edge-7", lease_s=10)
    alive = processes.join(ctx, kind="worker", name="edge-8", lease_s=10)
    lost_ids = [claimed_by(ctx, lost.id) for _ in range(2)]
    kept = claimed_by(ctx, alive.id)
    assert processes.reap(ctx) == [], "no lease has run out yet"
    age(ctx, lost.id, 11)

    assert sorted(processes.reap(ctx)) == sorted(lost_ids)
    for execution_id in lost_ids:
        ended = execution_actions.get(ctx, execution_id)
        assert ended.status == Status.ENDED_ERROR
        assert ended.message is not None
        assert f"the worker 'edge-7' (process {lost.id}, pid {lost.pid}" in ended.message
        assert "its last heartbeat was at" in ended.message
        assert "10 s lease" in ended.message
        assert "The script may have partly run; it will not run again" in ended.message
    assert execution_actions.get(ctx, kept).status == Status.RUNNING
    assert [view.process.id for view in processes.live(ctx)] == [alive.id]
    assert processes.reap(ctx) == [], "a second pass finds nothing more"
    assert not processes.renew(ctx, lost.id), "a reaped process cannot renew"
    assert processes.renew(ctx, alive.id)


def test_a_renewal_keeps_the_lease_and_a_late_one_is_refused(ctx: Context) -> None:
    process = processes.join(ctx, kind="serve", name="web", lease_s=10)
    age(ctx, process.id, 9)
    assert processes.renew(ctx, process.id)
    with ctx.db.read() as conn:
        renewed = process_rows.get(conn, process.id)
        assert renewed.heartbeat_at >= process_rows.clock(conn) - 1
    age(ctx, process.id, 11)
    assert not processes.renew(ctx, process.id)
    assert processes.reap(ctx) == []
    assert processes.live(ctx) == []


def test_executions_of_a_claimer_in_no_process_row_are_ended(ctx: Context) -> None:
    """Claimed by a process of an older version (its worker column holds no process id)."""
    process = processes.join(ctx, kind="worker", name="w", lease_s=10)
    execution_id = claimed_by(ctx, process.id)
    with ctx.db.begin() as conn:
        executions.set_columns(conn, execution_id, worker="old@host:1:2")
    assert processes.reap(ctx) == [execution_id]
    ended = execution_actions.get(ctx, execution_id)
    assert ended.status == Status.ENDED_ERROR
    assert ended.message is not None and "'old@host:1:2'" in ended.message


def test_a_single_process_store_ends_every_running_execution_at_its_start(ctx: Context) -> None:
    before = processes.join(ctx, kind="serve", name="before", lease_s=30)
    running = claimed_by(ctx, before.id)
    now = processes.join(ctx, kind="serve", name="now", lease_s=30)
    assert processes.take_over(ctx, now.id, "the workspace stopped") == [running]
    assert execution_actions.get(ctx, running).message == "the workspace stopped"
    assert [view.process.id for view in processes.live(ctx)] == [now.id]


def test_a_parent_waiting_on_a_reaped_child_learns_that_it_ended(ctx: Context) -> None:
    """The reaper ends through the path every end takes: waiters on the child wake."""
    lost = processes.join(ctx, kind="worker", name="gone", lease_s=10)
    execution_id = claimed_by(ctx, lost.id)
    age(ctx, lost.id, 11)

    async def reap_while_waiting() -> bool:
        ctx.events.bind(asyncio.get_running_loop())
        with ctx.events.watch(Event.ENDED, [execution_id]) as watch:
            await asyncio.to_thread(processes.reap, ctx)
            return await watch.wait(10)

    assert asyncio.run(reap_while_waiting())
