"""File rows: named byte contents that flows read and write with system.file."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import file

# Statements built once; see tether.store.statements.
_BY_NAME = file.c.name == sa.bindparam("b_name")
_SELECT_CONTENT = sa.select(file.c.content).where(_BY_NAME)
_SELECT_NAME = sa.select(file.c.name).where(_BY_NAME)
_INSERT = file.insert()
_UPDATE = file.update().where(_BY_NAME)
_DELETE = file.delete().where(_BY_NAME)


def get(conn: sa.Connection, name: str) -> bytes:
    """The content of file ``name``."""
    row = conn.execute(_SELECT_CONTENT, {"b_name": name}).first()
    if row is None:
        raise errors.FileNotFound(name=name)
    return bytes(row.content)


def exists(conn: sa.Connection, name: str) -> bool:
    """Whether file ``name`` exists."""
    return conn.execute(_SELECT_NAME, {"b_name": name}).first() is not None


def list_all(conn: sa.Connection) -> list[dict[str, Any]]:
    """Names, sizes and times of all files."""
    query = sa.select(
        file.c.name, sa.func.length(file.c.content).label("size"), file.c.updated_at
    ).order_by(file.c.name)
    return [dict(r._mapping) for r in conn.execute(query)]


def put(conn: sa.Connection, name: str, content: bytes, now: float) -> None:
    """Create or replace file ``name``."""
    values = {"content": content, "updated_at": now}
    if conn.execute(_UPDATE, {"b_name": name, **values}).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(_INSERT, {"name": name, **values})
    except sa.exc.IntegrityError as exc:
        if not database.is_unique_violation(exc):
            raise
        conn.execute(_UPDATE, {"b_name": name, **values})


def delete(conn: sa.Connection, name: str) -> None:
    """Remove file ``name``."""
    if conn.execute(_DELETE, {"b_name": name}).rowcount == 0:
        raise errors.FileNotFound(name=name)
