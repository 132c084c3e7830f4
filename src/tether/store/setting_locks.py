"""Setting lock rows: which execution holds the lock of a setting (setting.acquire())."""

from __future__ import annotations

import sqlalchemy as sa

from tether.store import database
from tether.store.schema import setting_lock

_BY_NAME = setting_lock.c.name == sa.bindparam("b_name")
_SELECT_HOLDER = sa.select(setting_lock.c.execution_id).where(_BY_NAME).with_for_update()
_INSERT = setting_lock.insert()
_TAKE_OVER = setting_lock.update().where(
    _BY_NAME, setting_lock.c.execution_id == sa.bindparam("b_holder")
)
_DELETE_OWN = setting_lock.delete().where(
    _BY_NAME, setting_lock.c.execution_id == sa.bindparam("b_execution_id")
)


def holder(conn: sa.Connection, name: str) -> str | None:
    """The id of the execution that holds the lock of setting ``name``, or None."""
    return conn.execute(_SELECT_HOLDER, {"b_name": name}).scalar()


def take(conn: sa.Connection, name: str, execution_id: str, now: float) -> bool:
    """Take a free lock; False when another transaction took it first."""
    try:
        with conn.begin_nested():
            conn.execute(_INSERT, {"name": name, "execution_id": execution_id, "acquired_at": now})
    except sa.exc.IntegrityError as exc:
        if not database.is_unique_violation(exc):
            raise
        return False
    return True


def take_over(conn: sa.Connection, name: str, old: str, execution_id: str, now: float) -> bool:
    """Take the lock from ``old`` (an execution that ended holding it)."""
    params = {"b_name": name, "b_holder": old, "execution_id": execution_id, "acquired_at": now}
    return conn.execute(_TAKE_OVER, params).rowcount == 1


def release(conn: sa.Connection, name: str, execution_id: str) -> bool:
    """Release the lock of ``name`` held by ``execution_id``; False if it did not hold it."""
    params = {"b_name": name, "b_execution_id": execution_id}
    return conn.execute(_DELETE_OWN, params).rowcount == 1
