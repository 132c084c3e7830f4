"""Process rows: the registry of a workspace's serve and worker processes and their leases.

Every time here is the database's clock (database.ClockNow); no host's clock decides a lease.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tether.store.database import ClockNow
from tether.store.schema import process
from tether.store.statements import check_field_order

SERVE = "serve"
WORKER = "worker"
KINDS = (SERVE, WORKER)


@dataclass(frozen=True)
class Process:
    id: str
    kind: str
    name: str
    host: str
    pid: int
    lease_s: float
    started_at: float
    heartbeat_at: float


check_field_order(Process, process)

_BY_ID = process.c.id == sa.bindparam("b_id")
_IS_HELD = process.c.heartbeat_at + process.c.lease_s >= ClockNow()
_INSERT = process.insert().values(started_at=ClockNow(), heartbeat_at=ClockNow())
# A lease that ran out is never renewed: others may already count the process as dead.
_RENEW = process.update().where(_BY_ID, _IS_HELD).values(heartbeat_at=ClockNow())
# SKIP LOCKED: two reapers never wait on, or both handle, the same dead process.
_SELECT_EXPIRED = (
    sa.select(process)
    .where(sa.not_(_IS_HELD))
    .order_by(process.c.heartbeat_at)
    .with_for_update(skip_locked=True)
)
_SELECT_LIVE = sa.select(process).where(_IS_HELD).order_by(process.c.started_at)
_DELETE = process.delete().where(_BY_ID)
_DELETE_OTHERS = process.delete().where(process.c.id != sa.bindparam("b_id"))
_SELECT_NOW = sa.select(ClockNow())
# Whether process b_worker holds its lease: part of every claim, so that a process whose
# lease ran out can claim nothing, whatever its own clock says.
HOLDS_LEASE = sa.exists().where(process.c.id == sa.bindparam("b_worker"), _IS_HELD)


def insert(conn: sa.Connection, *, id: str, kind: str, name: str, host: str, pid: int,
           lease_s: float) -> Process:  # fmt: skip
    """Register a process; its lease starts now on the database's clock."""
    values = {"id": id, "kind": kind, "name": name, "host": host, "pid": pid, "lease_s": lease_s}
    conn.execute(_INSERT, values)
    return get(conn, id)


def find(conn: sa.Connection, process_id: str) -> Process | None:
    """The process with ``process_id``, live or not, or None."""
    row = conn.execute(sa.select(process).where(_BY_ID), {"b_id": process_id}).first()
    return Process(*row) if row else None


def get(conn: sa.Connection, process_id: str) -> Process:
    """The process with ``process_id``; it must exist."""
    found = find(conn, process_id)
    if found is None:
        raise LookupError(f"no process '{process_id}'")
    return found


def renew(conn: sa.Connection, process_id: str) -> bool:
    """Extend the lease of a process that still holds it; False when it ran out or is gone."""
    return conn.execute(_RENEW, {"b_id": process_id}).rowcount == 1


def lock_expired(conn: sa.Connection) -> list[Process]:
    """The processes whose lease ran out, locked until the transaction ends, oldest first."""
    return [Process(*row) for row in conn.execute(_SELECT_EXPIRED)]


def live(conn: sa.Connection) -> list[Process]:
    """The processes that hold their lease, oldest first."""
    return [Process(*row) for row in conn.execute(_SELECT_LIVE)]


def delete(conn: sa.Connection, process_id: str) -> None:
    """Remove a process from the registry."""
    conn.execute(_DELETE, {"b_id": process_id})


def delete_others(conn: sa.Connection, process_id: str) -> None:
    """Remove every process but ``process_id`` (a single-process store at its start)."""
    conn.execute(_DELETE_OTHERS, {"b_id": process_id})


def clock(conn: sa.Connection) -> float:
    """The database's clock now, in seconds since the epoch."""
    return float(conn.execute(_SELECT_NOW).scalar_one())
