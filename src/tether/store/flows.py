"""Flow rows: read and write the flow table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import flow
from tether.store.statements import check_field_order, set_params


@dataclass(frozen=True)
class Flow:
    name: str
    script: str
    description: str
    created_at: float
    updated_at: float


check_field_order(Flow, flow)


def _row(row: Sequence[Any]) -> Flow:
    return Flow(*row)


# Statements built once; see tether.store.statements.
_BY_NAME = flow.c.name == sa.bindparam("b_name")
_SELECT = sa.select(flow).where(_BY_NAME)
_INSERT = flow.insert()
_UPDATE = flow.update().where(_BY_NAME)
_DELETE = flow.delete().where(_BY_NAME)


def get(conn: sa.Connection, name: str) -> Flow:
    """The flow named ``name``."""
    row = conn.execute(_SELECT, {"b_name": name}).first()
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
            conn.execute(_INSERT, dict(item.__dict__))
    except sa.exc.IntegrityError as exc:
        if database.is_unique_violation(exc):
            raise errors.NameTaken(what="flow", name=item.name) from exc
        raise


def update(conn: sa.Connection, name: str, **values: object) -> None:
    """Change columns of an existing flow."""
    if conn.execute(_UPDATE, set_params(flow, values, b_name=name)).rowcount == 0:
        raise errors.FlowNotFound(name=name)


def delete(conn: sa.Connection, name: str) -> None:
    """Remove a flow; its executions keep their script snapshots."""
    if conn.execute(_DELETE, {"b_name": name}).rowcount == 0:
        raise errors.FlowNotFound(name=name)
