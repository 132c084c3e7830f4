"""Flow rows: read and write the flow table."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import flow


@dataclass(frozen=True)
class Flow:
    name: str
    script: str
    description: str
    created_at: float
    updated_at: float


def _row(row: sa.Row) -> Flow:
    return Flow(**row._mapping)


def get(conn: sa.Connection, name: str) -> Flow:
    """The flow named ``name``."""
    row = conn.execute(sa.select(flow).where(flow.c.name == name)).first()
    if row is None:
        raise errors.FlowNotFound(name=name)
    return _row(row)


def list_all(conn: sa.Connection, search: str | None = None) -> list[Flow]:
    """All flows by name, optionally those whose name contains ``search``."""
    query = sa.select(flow).order_by(flow.c.name)
    if search:
        query = query.where(flow.c.name.contains(search, autoescape=True))
    return [_row(r) for r in conn.execute(query)]


def insert(conn: sa.Connection, item: Flow) -> None:
    """Add a new flow."""
    try:
        with conn.begin_nested():
            conn.execute(flow.insert().values(**item.__dict__))
    except sa.exc.IntegrityError as exc:
        if database.is_unique_violation(exc):
            raise errors.NameTaken(what="flow", name=item.name) from exc
        raise


def update(conn: sa.Connection, name: str, **values: object) -> None:
    """Change columns of an existing flow."""
    result = conn.execute(flow.update().where(flow.c.name == name).values(**values))
    if result.rowcount == 0:
        raise errors.FlowNotFound(name=name)


def delete(conn: sa.Connection, name: str) -> None:
    """Remove a flow; its executions keep their script snapshots."""
    if conn.execute(flow.delete().where(flow.c.name == name)).rowcount == 0:
        raise errors.FlowNotFound(name=name)
