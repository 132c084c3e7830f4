"""Setting rows: named JSON values that flows read and write with system.setting."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import setting


def get(conn: sa.Connection, name: str) -> Any:
    """The value of setting ``name``."""
    row = conn.execute(sa.select(setting.c.value).where(setting.c.name == name)).first()
    if row is None:
        raise errors.SettingNotFound(name=name)
    return row.value


def exists(conn: sa.Connection, name: str) -> bool:
    """Whether setting ``name`` exists."""
    query = sa.select(setting.c.name).where(setting.c.name == name)
    return conn.execute(query).first() is not None


def list_all(conn: sa.Connection) -> list[dict[str, Any]]:
    """All settings by name."""
    rows = conn.execute(sa.select(setting).order_by(setting.c.name))
    return [dict(r._mapping) for r in rows]


def put(conn: sa.Connection, name: str, value: Any, now: float) -> None:
    """Create or replace setting ``name``."""
    updated = conn.execute(
        setting.update().where(setting.c.name == name).values(value=value, updated_at=now)
    )
    if updated.rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(setting.insert().values(name=name, value=value, updated_at=now))
    except sa.exc.IntegrityError as exc:
        if not database.is_unique_violation(exc):
            raise
        conn.execute(
            setting.update().where(setting.c.name == name).values(value=value, updated_at=now)
        )


def delete(conn: sa.Connection, name: str) -> None:
    """Remove setting ``name``."""
    if conn.execute(setting.delete().where(setting.c.name == name)).rowcount == 0:
        raise errors.SettingNotFound(name=name)
