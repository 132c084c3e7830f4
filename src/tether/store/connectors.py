"""Connector rows (named connectors for this.connect) and the inputs of task executions.

Credentials and task inputs arrive here already encrypted; this module never sees them clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.store import database
from tether.store.schema import connector, task_input
from tether.store.statements import check_field_order, set_params


@dataclass(frozen=True)
class Connector:
    name: str
    type: str
    host: str | None
    value: dict[str, Any]
    credentials: str | None  # encrypted JSON object
    description: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class TaskInput:
    execution_id: str
    task_type: str
    connector: str | None
    inputs: str  # encrypted JSON object


check_field_order(Connector, connector)
check_field_order(TaskInput, task_input)

_BY_NAME = connector.c.name == sa.bindparam("b_name")
_SELECT = sa.select(connector).where(_BY_NAME)
_UPDATE = connector.update().where(_BY_NAME)
_DELETE = connector.delete().where(_BY_NAME)
_SELECT_TASK = sa.select(task_input).where(
    task_input.c.execution_id == sa.bindparam("b_execution_id")
)


def find(conn: sa.Connection, name: str) -> Connector | None:
    """The connector named ``name``, or None."""
    row = conn.execute(_SELECT, {"b_name": name}).first()
    return Connector(*row) if row else None


def get(conn: sa.Connection, name: str) -> Connector:
    """The connector named ``name``."""
    found = find(conn, name)
    if found is None:
        raise errors.ConnectorNotFound(name=name)
    return found


def list_all(conn: sa.Connection) -> list[Connector]:
    """All connectors by name."""
    return [Connector(*r) for r in conn.execute(sa.select(connector).order_by(connector.c.name))]


def insert(conn: sa.Connection, item: Connector) -> None:
    """Add a new connector."""
    try:
        with conn.begin_nested():
            conn.execute(connector.insert(), dict(item.__dict__))
    except sa.exc.IntegrityError as exc:
        if database.is_unique_violation(exc):
            raise errors.NameTaken(what="connector", name=item.name) from exc
        raise


def update(conn: sa.Connection, name: str, **values: Any) -> None:
    """Change columns of an existing connector."""
    if conn.execute(_UPDATE, set_params(connector, values, b_name=name)).rowcount == 0:
        raise errors.ConnectorNotFound(name=name)


def delete(conn: sa.Connection, name: str) -> None:
    """Remove a connector; task executions that used it keep their own inputs."""
    if conn.execute(_DELETE, {"b_name": name}).rowcount == 0:
        raise errors.ConnectorNotFound(name=name)


def insert_task_input(conn: sa.Connection, item: TaskInput) -> None:
    """Keep the (encrypted) inputs of a task execution."""
    conn.execute(task_input.insert(), dict(item.__dict__))


def find_task_input(conn: sa.Connection, execution_id: str) -> TaskInput | None:
    """The inputs of task execution ``execution_id``, or None if it is not a task."""
    row = conn.execute(_SELECT_TASK, {"b_execution_id": execution_id}).first()
    return TaskInput(*row) if row else None
