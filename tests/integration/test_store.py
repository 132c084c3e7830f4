"""The store on SQLite and PostgreSQL: migrations match the schema module, claiming is
atomic, and an execution's status only moves forward."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tests.support.stores import open_contexts
from tether import errors
from tether.actions import executions as execution_actions
from tether.actions import flows, processes
from tether.actions.context import Context
from tether.statuses import ENDED, STATUSES, Status
from tether.store import database, executions, schema
from tether.store import processes as processes_store
from tether.store.database import Database

QUICK = "def handler(system, this):\n    pass\n"


@pytest.fixture
def open_context(database_url: str) -> Iterator[Callable[[], Context]]:
    with open_contexts(database_url) as open_:
        yield open_


@pytest.fixture
def ctx(open_context: Callable[[], Context]) -> Context:
    context = open_context()
    flows.create(context, "f", QUICK)
    return context


def join(ctx: Context, name: str = "w") -> str:
    """A process in the registry that may claim (its lease outlasts the test)."""
    return processes.join(ctx, kind="worker", name=name, lease_s=3600).id


def queue(ctx: Context, count: int) -> list[str]:
    return [execution_actions.start(ctx, flow_name="f", owner="admin").id for _ in range(count)]


# --- migrations -------------------------------------------------------------------------


def test_migrations_produce_exactly_the_schema_module(open_context: Callable[[], Context]) -> None:
    db = open_context().db
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, schema.metadata)
        current = context.get_current_revision()
    assert differences == []
    heads = ScriptDirectory.from_config(database.alembic_config()).get_heads()
    assert heads == [current] == [database.HEAD_REVISION]
    assert db.revision() == database.HEAD_REVISION


def test_migrating_twice_changes_nothing(open_context: Callable[[], Context]) -> None:
    db = open_context().db
    db.migrate()
    with db.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert tables == set(schema.metadata.tables) | {"alembic_version"}


def test_the_comparison_notices_a_schema_that_differs(
    open_context: Callable[[], Context],
) -> None:
    """Guards the test above: compare_metadata must see a column the migrations lack."""
    db = open_context().db
    changed = sa.MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["flow"].append_column(sa.Column("owner", sa.String(100), nullable=True))
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, changed)
    assert [d[0] for d in differences] == ["add_column"]


# --- claiming ---------------------------------------------------------------------------


def run_together(workers: list[Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread, released at the same moment; their results."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(10)
            results[index] = workers[index]()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    return results


def test_concurrent_workers_never_claim_the_same_execution(
    ctx: Context, open_context: Callable[[], Context]
) -> None:
    queued = queue(ctx, 30)

    workers = [join(ctx, f"w{i}") for i in range(4)]

    def worker(process_id: str) -> Callable[[], list[str]]:
        own = open_context()

        def claim_all() -> list[str]:
            claimed = []
            while (ex := execution_actions.claim_next(own, process_id)) is not None:
                claimed.append(ex.id)
            return claimed

        return claim_all

    results = run_together([worker(process_id) for process_id in workers])
    claimed = [i for result in results for i in result]
    assert sorted(claimed) == sorted(queued)  # each exactly once
    with ctx.db.begin() as conn:
        rows = [executions.get(conn, i) for i in queued]
    assert {r.status for r in rows} == {Status.RUNNING}
    for index, result in enumerate(results):
        assert all(r.worker == workers[index] for r in rows if r.id in result)


def test_two_claims_of_one_execution_succeed_once(
    ctx: Context, open_context: Callable[[], Context]
) -> None:
    [execution_id] = queue(ctx, 1)

    def claimer(process_id: str) -> Callable[[], bool]:
        own = open_context()

        def claim() -> bool:
            with own.db.begin() as conn:
                claimed = executions.claim_queued(conn, process_id, 5, 1.0)
            return [ex.id for ex in claimed] == [execution_id]

        return claim

    claimers = [claimer(join(ctx, "a")), claimer(join(ctx, "b"))]
    assert sorted(run_together(claimers)) == [False, True]


def test_a_process_whose_lease_ran_out_claims_nothing(ctx: Context) -> None:
    """The claim itself checks the lease on the database's clock, whatever the process thinks."""
    queue(ctx, 2)
    expired = processes.join(ctx, kind="worker", name="late", lease_s=1).id
    with ctx.db.begin() as conn:
        conn.execute(schema.process.update().values(heartbeat_at=schema.process.c.heartbeat_at - 5))
        assert executions.claim_queued(conn, expired, 5, 1.0) == []
        assert executions.claim_queued(conn, "no such process", 5, 1.0) == []
        assert not processes_store.renew(conn, expired), "a lease that ran out is not renewed"
    assert len(execution_actions.claim_some(ctx, join(ctx), 5)) == 2


def test_only_queued_executions_are_claimed(ctx: Context) -> None:
    worker = join(ctx)
    pending = execution_actions.start(ctx, flow_name="f", run=False, owner="admin")
    assert execution_actions.claim_next(ctx, worker) is None
    execution_actions.run_pending(ctx, pending.id)
    claimed = execution_actions.claim_next(ctx, worker)
    assert claimed is not None and claimed.id == pending.id
    assert claimed.started_at is not None
    assert execution_actions.claim_next(ctx, worker) is None


# --- forward-only status ----------------------------------------------------------------


@pytest.mark.parametrize("final", ENDED)
def test_an_ended_execution_never_changes_status_again(ctx: Context, final: str) -> None:
    worker = join(ctx)
    [execution_id] = queue(ctx, 1)
    execution_actions.claim_next(ctx, worker)
    ended = execution_actions.end(ctx, execution_id, final, "first end")
    again = execution_actions.end(ctx, execution_id, Status.ENDED_SUCCESS, "second end")
    assert (again.status, again.message, again.ended_at) == (final, "first end", ended.ended_at)
    for status in STATUSES:
        with ctx.db.begin() as conn, pytest.raises(errors.ExecutionEnded):
            executions.update(conn, execution_id, status=status)
    with pytest.raises(errors.ExecutionEnded):
        execution_actions.save(ctx, execution_id, output_value={"late": True})
    assert execution_actions.cancel(ctx, execution_id).status == final
    assert execution_actions.run_pending(ctx, execution_id).status == final
    assert execution_actions.get(ctx, execution_id).status == final


@pytest.mark.parametrize(
    ("path", "backwards"),
    [
        ((Status.QUEUED,), Status.PENDING),
        ((Status.QUEUED, Status.RUNNING), Status.QUEUED),
        ((Status.QUEUED, Status.RUNNING), Status.PENDING),
        ((Status.QUEUED, Status.RUNNING, Status.PAUSED), Status.QUEUED),
    ],
)
def test_status_never_moves_backwards(ctx: Context, path: tuple[str, ...], backwards: str) -> None:
    pending = execution_actions.start(ctx, flow_name="f", run=False, owner="admin")
    with ctx.db.begin() as conn:
        for status in path:
            executions.update(conn, pending.id, status=status)
    with ctx.db.begin() as conn, pytest.raises(errors.Conflict):
        executions.update(conn, pending.id, status=backwards)
    assert execution_actions.get(ctx, pending.id).status == path[-1]


def test_paused_and_running_may_alternate(ctx: Context) -> None:
    worker = join(ctx)
    [execution_id] = queue(ctx, 1)
    execution_actions.claim_next(ctx, worker)
    with ctx.db.begin() as conn:
        executions.update(conn, execution_id, status=Status.PAUSED)
        executions.update(conn, execution_id, status=Status.RUNNING)
        executions.update(conn, execution_id, status=Status.PAUSED)
    assert execution_actions.get(ctx, execution_id).status == Status.PAUSED
    ended = execution_actions.end(ctx, execution_id, Status.ENDED_SUCCESS, None)
    assert ended.status == Status.ENDED_SUCCESS


def test_migration_0002_gives_existing_executions_an_owner(database_url: str) -> None:
    """A store from before owners: received executions go to the link account, local ones to
    the oldest organization admin, and sync configs keep the seed's behaviour."""
    from alembic import command

    db = Database(database_url)
    try:
        with db.engine.begin() as conn:
            config = database.alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        with db.engine.begin() as conn:
            for name, role, created in (("zed", "organization_admin", 2.0), ("amy", "user", 1.0)):
                conn.execute(
                    sa.text(
                        'INSERT INTO "user" (name, role, is_enabled, password_hash, created_at) '
                        "VALUES (:n, :r, true, 'x', :c)"
                    ),
                    {"n": name, "r": role, "c": created},
                )
            for execution_id, origin in (("a", "local"), ("b", "received"), ("c", "mirror")):
                conn.execute(schema.execution.insert(), _old_execution(execution_id, origin))
            conn.execute(
                sa.text(
                    "INSERT INTO sync_config (name, is_enabled, role, verify_ssl, "
                    "remote_public_keys, send_all_executions, created_at, updated_at) "
                    "VALUES ('hq', true, 'controlled', true, '[]', false, 1, 1)"
                )
            )
        db.migrate()
        with db.read() as conn:
            rows = conn.execute(sa.select(schema.execution.c.id, schema.execution.c.owner))
            owners = {row.id: row.owner for row in rows}
            policy = conn.execute(
                sa.select(
                    schema.sync_config.c.accepted_scripts,
                    schema.sync_config.c.run_as,
                    schema.sync_config.c.allow_onward_remote,
                    schema.sync_config.c.max_running,
                )
            ).one()
        assert owners == {"a": "zed", "b": "tether-link", "c": None}
        assert tuple(policy) == (None, None, False, None)
    finally:
        db.dispose()


def _old_execution(execution_id: str, origin: str) -> dict[str, Any]:
    """An execution row as revision 0001 stored it (no owner column)."""
    return {
        "id": execution_id,
        "name": "old",
        "flow_name": "f",
        "status": "QUEUED",
        "script": QUICK,
        "script_sha256": "0" * 64,
        "input_value": {},
        "output_value": {},
        "parent_id": None,
        "origin": origin,
        "sync_config": None if origin == "local" else "hq",
        "remote_execution_id": None if origin == "local" else execution_id,
        "is_cancel_requested": False,
        "log_count": 0,
        "log_synced": 0,
        "created_at": 1.0,
    }


def test_a_postgresql_session_idle_inside_a_transaction_is_ended_by_the_server(
    ctx: Context,
) -> None:
    # A process cut off mid-transaction would otherwise hold its row locks, and so the other
    # processes' reaper, for as long as TCP takes to give up (hours).
    if ctx.db.is_sqlite:
        pytest.skip("SQLite has no sessions: a process that stops holds no lock of it")
    with ctx.db.read() as conn:
        setting = conn.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar()
    assert setting == f"{database.IDLE_IN_TRANSACTION_S}s"
