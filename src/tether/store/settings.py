"""Setting rows: named JSON values that flows read and write with system.setting."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import setting

# Statements built once; see tether.store.statements.
_BY_NAME = setting.c.name == sa.bindparam("b_name")
_SELECT_VALUE = sa.select(setting.c.value).where(_BY_NAME)
_SELECT_NAME = sa.select(setting.c.name).where(_BY_NAME)
_INSERT = setting.insert()
_UPDATE = setting.update().where(_BY_NAME)
_DELETE = setting.delete().where(_BY_NAME)


def get(conn: sa.Connection, name: str) -> Any:
    """The value of setting ``name``."""
    row = conn.execute(_SELECT_VALUE, {"b_name": name}).first()
    if row is None:
        raise errors.SettingNotFound(name=name)
    return row.value


def exists(conn: sa.Connection, name: str) -> bool:
    """Whether setting ``name`` exists."""
    return conn.execute(_SELECT_NAME, {"b_name": name}).first() is not None


def list_all(conn: sa.Connection) -> list[dict[str, Any]]:
    """All settings by name."""
    rows = conn.execute(sa.select(setting).order_by(setting.c.name))
    return [dict(r._mapping) for r in rows]


def put(conn: sa.Connection, name: str, value: Any, now: float) -> None:
    """Create or replace setting ``name``."""
    if conn.execute(_UPDATE, {"b_name": name, "value": value, "updated_at": now}).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(_INSERT, {"name": name, "value": value, "updated_at": now})
    except sa.exc.IntegrityError as exc:
        if not database.is_unique_violation(exc):
            raise
        conn.execute(_UPDATE, {"b_name": name, "value": value, "updated_at": now})


def delete(conn: sa.Connection, name: str) -> None:
    """Remove setting ``name``."""
    if conn.execute(_DELETE, {"b_name": name}).rowcount == 0:
        raise errors.SettingNotFound(name=name)
