"""Execution rows and their logs: insert, read, claim, and forward-only status changes."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.statuses import ENDED, STATUSES, Status
from tether.store import processes
from tether.store.schema import execution, execution_log, process
from tether.store.statements import check_field_order, set_params

_RANK: dict[str, int] = {Status.PENDING: 0, Status.QUEUED: 1, Status.RUNNING: 2, Status.PAUSED: 2}
_RANK.update(dict.fromkeys(ENDED, 3))

LOCAL = "local"
RECEIVED = "received"
MIRROR = "mirror"
ORIGINS = (LOCAL, RECEIVED, MIRROR)


@dataclass(frozen=True)
class Execution:
    id: str
    name: str
    flow_name: str | None
    status: str
    script: str
    script_sha256: str
    input_value: dict[str, Any]
    output_value: dict[str, Any]
    message: str | None
    parent_id: str | None
    origin: str
    sync_config: str | None
    remote_execution_id: str | None
    is_cancel_requested: bool
    max_runtime_s: float | None
    worker: str | None
    owner: str | None
    log_count: int
    log_synced: int
    created_at: float
    started_at: float | None
    ended_at: float | None
    rerun_of: str | None = None

    @property
    def is_ended(self) -> bool:
        return self.status in ENDED

    @property
    def is_remote_child(self) -> bool:
        """Whether this execution runs in a linked workspace on this side's behalf."""
        return self.origin == LOCAL and self.sync_config is not None


@dataclass(frozen=True)
class LogEntry:
    seq: int
    time: float
    message: str
    fields: dict[str, Any]


def is_forward(old: str, new: str) -> bool:
    """Whether a status change from ``old`` to ``new`` is legal (only forward moves are)."""
    if old in ENDED:
        return False
    return _RANK[new] > _RANK[old] or {old, new} == {Status.RUNNING, Status.PAUSED}


check_field_order(Execution, execution)


def _row(row: Sequence[Any]) -> Execution:
    return Execution(*row)


# Statements built once; see tether.store.statements.
_BY_ID = execution.c.id == sa.bindparam("b_id")
_SELECT_BY_ID = sa.select(execution).where(_BY_ID)
_SELECT_BY_ID_FOR_UPDATE = _SELECT_BY_ID.with_for_update()
_SELECT_LINKED = sa.select(execution).where(
    execution.c.sync_config == sa.bindparam("b_sync_config"),
    execution.c.remote_execution_id == sa.bindparam("b_remote_id"),
    execution.c.origin == sa.bindparam("b_origin"),
)
_UNENDED_CHILDREN = sa.select(execution).where(
    execution.c.parent_id == sa.bindparam("b_parent_id"), execution.c.status.not_in(ENDED)
)
_SELECT_UNENDED_CHILDREN = _UNENDED_CHILDREN.order_by(execution.c.created_at)
_SELECT_UNENDED_CHILDREN_OF = (
    sa.select(execution)
    .where(
        execution.c.parent_id.in_(sa.bindparam("b_parent_ids", expanding=True)),
        execution.c.status.not_in(ENDED),
    )
    .order_by(execution.c.created_at)
)
PARENTS_PER_STATEMENT = 500  # well under SQLite's limit of bound parameters
_SELECT_UNENDED_REMOTE_CHILDREN = _UNENDED_CHILDREN.where(
    execution.c.origin == LOCAL, execution.c.sync_config.is_not(None)
).order_by(execution.c.created_at)
_SELECT_QUEUED_IDS = (
    sa.select(execution.c.id)
    .where(
        execution.c.status == Status.QUEUED,
        sa.or_(
            execution.c.origin == RECEIVED,
            sa.and_(execution.c.origin == LOCAL, execution.c.sync_config.is_(None)),
        ),
    )
    .order_by(execution.c.created_at)
    .limit(sa.bindparam("b_limit", type_=sa.Integer))
)
# Runnable QUEUED executions but those received over the sync configs in b_full, skipping
# rows another claimer holds: one statement claims them for the process b_worker, and only
# while that process holds its lease. The pick is a materialized CTE: as a plain
# `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`, PostgreSQL 15 was seen to update every
# queued row, not n.
_CLAIMABLE_IDS = (
    sa.select(execution.c.id)
    .where(
        execution.c.status == Status.QUEUED,
        sa.or_(
            sa.and_(
                execution.c.origin == RECEIVED,
                execution.c.sync_config.not_in(sa.bindparam("b_full", expanding=True)),
            ),
            sa.and_(execution.c.origin == LOCAL, execution.c.sync_config.is_(None)),
        ),
    )
    .order_by(execution.c.created_at)
    .limit(sa.bindparam("b_limit", type_=sa.Integer))
    .with_for_update(skip_locked=True)
    .cte("picked")
    .prefix_with("MATERIALIZED")
)
_CLAIM_QUEUED = (
    execution.update()
    .where(
        # No second `status = 'QUEUED'` here: the locking pick re-checks its WHERE against
        # the newest row version, and SQLite would then scan every queued row by status
        # instead of looking the picked ids up by key (0.55 ms a claim at 3,000 queued).
        execution.c.id.in_(sa.select(_CLAIMABLE_IDS.c.id)),
        processes.HOLDS_LEASE,
    )
    .values(
        status=Status.RUNNING, worker=sa.bindparam("b_worker"), started_at=sa.bindparam("b_now")
    )
    .returning(*execution.c)
)
_SELECT_RUNNING = sa.select(execution.c.id).where(
    execution.c.status.in_((Status.RUNNING, Status.PAUSED)), execution.c.origin != MIRROR
)
# RUNNING or PAUSED executions whose claimer has no process row: claimed by a process of an
# older version, or left by a process whose row went without them.
_SELECT_ORPHANS = _SELECT_RUNNING.add_columns(execution.c.worker).where(
    execution.c.worker.is_not(None),
    ~sa.exists().where(process.c.id == execution.c.worker),
)
_COUNT_RUNNING_RECEIVED = (
    sa.select(execution.c.sync_config, sa.func.count())
    .where(
        execution.c.origin == RECEIVED,
        execution.c.status.in_((Status.RUNNING, Status.PAUSED)),
        execution.c.sync_config.in_(sa.bindparam("b_links", expanding=True)),
    )
    .group_by(execution.c.sync_config)
)
_INSERT = execution.insert()
_SET_COLUMNS = execution.update().where(_BY_ID)
_UPDATE_UNENDED = _SET_COLUMNS.where(execution.c.status.not_in(ENDED))
# The check that a status only moves forward sits in the WHERE clause so that it holds
# against concurrent writers: one statement per new status, with the statuses it may follow.
_UPDATE_TO_STATUS = {
    new: _UPDATE_UNENDED.where(execution.c.status.in_([s for s in STATUSES if is_forward(s, new)]))
    for new in STATUSES
}
_SELECT_LOG = (
    sa.select(
        execution_log.c.seq,
        execution_log.c.time,
        execution_log.c.message,
        execution_log.c.fields,
    )
    .where(
        execution_log.c.execution_id == sa.bindparam("b_execution_id"),
        execution_log.c.seq >= sa.bindparam("b_offset"),
    )
    .order_by(execution_log.c.seq)
    .limit(sa.bindparam("b_limit", type_=sa.Integer))
)
_IN_IDS = execution.c.id.in_(sa.bindparam("b_ids", expanding=True))
_SELECT_STATUSES = sa.select(execution.c.id, execution.c.status).where(_IN_IDS)
_SELECT_MANY = sa.select(execution).where(_IN_IDS)


def insert(conn: sa.Connection, item: Execution) -> None:
    """Add an execution."""
    conn.execute(_INSERT, dict(item.__dict__))


def find(conn: sa.Connection, execution_id: str) -> Execution | None:
    """The execution with ``execution_id``, or None."""
    row = conn.execute(_SELECT_BY_ID, {"b_id": execution_id}).first()
    return _row(row) if row else None


def get(conn: sa.Connection, execution_id: str) -> Execution:
    """The execution with ``execution_id``."""
    found = find(conn, execution_id)
    if found is None:
        raise errors.ExecutionNotFound(id=execution_id)
    return found


def get_for_update(conn: sa.Connection, execution_id: str) -> Execution:
    """The execution, locked against concurrent writers until the transaction ends."""
    row = conn.execute(_SELECT_BY_ID_FOR_UPDATE, {"b_id": execution_id}).first()
    if row is None:
        raise errors.ExecutionNotFound(id=execution_id)
    return _row(row)


def find_linked(
    conn: sa.Connection, sync_config: str, remote_id: str, origin: str
) -> Execution | None:
    """The execution that came over ``sync_config`` with the other side's id ``remote_id``."""
    params = {"b_sync_config": sync_config, "b_remote_id": remote_id, "b_origin": origin}
    row = conn.execute(_SELECT_LINKED, params).first()
    return _row(row) if row else None


def list_filtered(
    conn: sa.Connection,
    *,
    status: str | None = None,
    flow_name: str | None = None,
    parent_id: str | None = None,
    origin: str | None = None,
    text: str | None = None,
    created_from: float | None = None,
    created_to: float | None = None,
    name: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Execution]:
    """Executions matching every given filter, newest first.

    ``text``: a part of the name, the message or a log entry, in any case.
    ``created_from``, ``created_to``: bounds of the creation time (Unix seconds, inclusive).
    """
    query = sa.select(execution).order_by(execution.c.created_at.desc(), execution.c.id.desc())
    for column, value in (
        (execution.c.status, status),
        (execution.c.flow_name, flow_name),
        (execution.c.parent_id, parent_id),
        (execution.c.origin, origin),
        (execution.c.name, name),
    ):
        if value is not None:
            query = query.where(column == value)
    if text:
        query = query.where(_mentions(text))
    if created_from is not None:
        query = query.where(execution.c.created_at >= created_from)
    if created_to is not None:
        query = query.where(execution.c.created_at <= created_to)
    return [_row(r) for r in conn.execute(query.limit(limit).offset(offset))]


def _mentions(text: str) -> sa.ColumnElement[bool]:
    """Whether an execution's name, message or one of its log entries contains ``text``."""
    in_log = (
        sa.select(execution_log.c.seq)
        .where(
            execution_log.c.execution_id == execution.c.id,
            execution_log.c.message.icontains(text, autoescape=True),
        )
        .exists()
    )
    return sa.or_(
        execution.c.name.icontains(text, autoescape=True),
        execution.c.message.icontains(text, autoescape=True),
        in_log,
    )


def children_of(conn: sa.Connection, parent_ids: Sequence[str], limit: int) -> list[Execution]:
    """Up to ``limit`` children of the executions in ``parent_ids``, oldest first: one level
    of a tree in one query."""
    query = (
        sa.select(execution)
        .where(execution.c.parent_id.in_(list(parent_ids)))
        .order_by(execution.c.created_at, execution.c.id)
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(query)]


def status_counts(conn: sa.Connection, flow_name: str) -> dict[str, int]:
    """How many executions of flow ``flow_name`` started here are in each status."""
    query = (
        sa.select(execution.c.status, sa.func.count())
        .where(execution.c.flow_name == flow_name, execution.c.origin == LOCAL)
        .group_by(execution.c.status)
    )
    return {status: int(number) for status, number in conn.execute(query)}


def unended_children(
    conn: sa.Connection, parent_id: str, *, remote_only: bool = False
) -> list[Execution]:
    """The children of one execution that have not ended (only remote ones, if asked), oldest first.

    A parent that started thousands of children reads only the few still open.
    """
    query = _SELECT_UNENDED_REMOTE_CHILDREN if remote_only else _SELECT_UNENDED_CHILDREN
    return [_row(r) for r in conn.execute(query, {"b_parent_id": parent_id})]


def unended_children_of(conn: sa.Connection, parent_ids: Sequence[str]) -> list[Execution]:
    """The unended children of several executions: one statement per 500 parents."""
    found: list[Execution] = []
    for start in range(0, len(parent_ids), PARENTS_PER_STATEMENT):
        chunk = list(parent_ids[start : start + PARENTS_PER_STATEMENT])
        found += [
            _row(r) for r in conn.execute(_SELECT_UNENDED_CHILDREN_OF, {"b_parent_ids": chunk})
        ]
    return found


def unended_ids_of_link(conn: sa.Connection, sync_config: str) -> list[str]:
    """Ids of the unended executions that came from or went to ``sync_config``, oldest first."""
    query = (
        sa.select(execution.c.id)
        .where(execution.c.sync_config == sync_config, execution.c.status.not_in(ENDED))
        .order_by(execution.c.created_at)
    )
    return list(conn.execute(query).scalars())


def queued_ids(conn: sa.Connection, limit: int) -> list[str]:
    """Ids of executions this workspace's runners may claim, oldest first."""
    return list(conn.execute(_SELECT_QUEUED_IDS, {"b_limit": limit}).scalars())


def running_received(conn: sa.Connection, links: Sequence[str]) -> dict[str, int]:
    """How many received executions of each sync config in ``links`` run (or pause) now."""
    rows = conn.execute(_COUNT_RUNNING_RECEIVED, {"b_links": list(links)})
    return {name: int(number) for name, number in rows}


def claim_queued(
    conn: sa.Connection, worker: str, limit: int, now: float, full_links: Collection[str] = ()
) -> list[Execution]:
    """Move up to ``limit`` of the oldest runnable QUEUED executions to RUNNING for process
    ``worker``, in one statement, and return them oldest first; none unless ``worker`` holds
    its lease. Executions received over the sync configs in ``full_links`` stay queued."""
    params = {"b_worker": worker, "b_now": now, "b_limit": limit, "b_full": list(full_links)}
    claimed = [_row(row) for row in conn.execute(_CLAIM_QUEUED, params)]
    return sorted(claimed, key=lambda ex: (ex.created_at, ex.id))


def update(conn: sa.Connection, execution_id: str, **values: Any) -> None:
    """Change columns of an execution that has not ended; its status only moves forward."""
    query = _UPDATE_UNENDED
    status = values.get("status")
    if status is not None:
        if status not in STATUSES:
            raise errors.InvalidInput(detail=f"'{status}' is not an execution status")
        query = _UPDATE_TO_STATUS[status]
    if conn.execute(query, set_params(execution, values, b_id=execution_id)).rowcount == 1:
        return
    current = get(conn, execution_id)
    if current.is_ended:
        raise errors.ExecutionEnded(id=execution_id, status=current.status)
    raise errors.Conflict(
        detail=f"execution '{execution_id}' cannot move from {current.status} to {status}: "
        "a status only moves forward"
    )


def set_columns(conn: sa.Connection, execution_id: str, **values: Any) -> None:
    """Change bookkeeping columns, also of an ended execution."""
    conn.execute(_SET_COLUMNS, set_params(execution, values, b_id=execution_id))


def running_ids(conn: sa.Connection, worker: str | None = None) -> list[str]:
    """Ids of RUNNING or PAUSED executions run by this workspace (or one process)."""
    query = _SELECT_RUNNING.where(
        sa.or_(execution.c.origin == RECEIVED, execution.c.sync_config.is_(None))
    )
    if worker is not None:
        query = query.where(execution.c.worker == worker)
    return list(conn.execute(query).scalars())


_SELECT_CANCEL_REQUESTED = sa.select(execution.c.id).where(
    _IN_IDS, execution.c.is_cancel_requested, execution.c.status.not_in(ENDED)
)


def cancel_requested(conn: sa.Connection, ids: Sequence[str]) -> list[str]:
    """Those of ``ids`` that were asked to stop and have not ended."""
    found: list[str] = []
    for chunk in _chunks(ids):
        found += conn.execute(_SELECT_CANCEL_REQUESTED, {"b_ids": chunk}).scalars()
    return found


def orphaned(conn: sa.Connection) -> list[tuple[str, str]]:
    """(id, worker) of the running executions whose claimer is in no process row."""
    return [(row.id, row.worker) for row in conn.execute(_SELECT_ORPHANS)]


def append_log(
    conn: sa.Connection, execution_id: str, start: int, entries: Iterable[LogEntry]
) -> int:
    """Append log entries numbered from ``start``; return the new log count."""
    rows = [
        {
            "execution_id": execution_id,
            "seq": e.seq,
            "time": e.time,
            "message": e.message,
            "fields": e.fields,
        }
        for e in entries
    ]
    if rows:
        conn.execute(execution_log.insert(), rows)
    new_count = start + len(rows)
    set_columns(conn, execution_id, log_count=new_count)
    return new_count


def read_log(
    conn: sa.Connection, execution_id: str, offset: int = 0, limit: int = 1000
) -> list[LogEntry]:
    """Log entries of one execution from ``offset``, in order."""
    params = {"b_execution_id": execution_id, "b_offset": offset, "b_limit": limit}
    return [LogEntry(*r) for r in conn.execute(_SELECT_LOG, params)]


def count(conn: sa.Connection, **filters: Any) -> int:
    """How many executions match ``filters`` (column=value)."""
    query = sa.select(sa.func.count()).select_from(execution)
    for name, value in filters.items():
        query = query.where(execution.c[name] == value)
    return conn.execute(query).scalar_one()


def page_after(
    conn: sa.Connection, cursor: tuple[float, str] | None, limit: int, origin: str
) -> list[Execution]:
    """Executions of ``origin`` ordered by (created_at, id), after ``cursor``."""
    query = sa.select(execution).where(execution.c.origin == origin)
    if cursor is not None:
        created, last_id = cursor
        query = query.where(
            sa.or_(
                execution.c.created_at > created,
                sa.and_(execution.c.created_at == created, execution.c.id > last_id),
            )
        )
    query = query.order_by(execution.c.created_at, execution.c.id).limit(limit)
    return [_row(r) for r in conn.execute(query)]


PUBLIC_FIELDS = (
    "id",
    "name",
    "flow_name",
    "status",
    "input_value",
    "output_value",
    "message",
    "parent_id",
    "script",
    "origin",
    "sync_config",
    "remote_execution_id",
    "max_runtime_s",
    "owner",
    "script_sha256",
    "created_at",
    "started_at",
    "ended_at",
    "rerun_of",
)


def as_record(ex: Execution) -> dict[str, Any]:
    """The fields of ``ex`` that scripts and API clients see."""
    record = {name: getattr(ex, name) for name in PUBLIC_FIELDS}
    record["remote_workspace_name"] = ex.sync_config if ex.is_remote_child else None
    return record


def _chunks(ids: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def statuses(conn: sa.Connection, ids: Sequence[str]) -> dict[str, str]:
    """The status of each execution in ``ids`` that exists."""
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        rows = conn.execute(_SELECT_STATUSES, {"b_ids": chunk})
        found.update((row.id, row.status) for row in rows)
    return found


def get_many(conn: sa.Connection, ids: Sequence[str]) -> dict[str, Execution]:
    """The executions in ``ids`` by id; every one must exist."""
    found: dict[str, Execution] = {}
    for chunk in _chunks(ids):
        found.update((row.id, _row(row)) for row in conn.execute(_SELECT_MANY, {"b_ids": chunk}))
    missing = [i for i in ids if i not in found]
    if missing:
        raise errors.ExecutionNotFound(id=missing[0])
    return found
