"""Message rows: the forms executions ask people to answer (system.message / this.message).

A message is ``open`` until it is answered, once; the answer is checked before it gets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.statuses import ENDED
from tether.store.schema import execution, message
from tether.store.statements import check_field_order

OPEN = "open"
ANSWERED = "answered"


@dataclass(frozen=True)
class Message:
    id: str
    execution_id: str
    subject: str
    message_type: str
    body: dict[str, Any]
    status: str
    response: dict[str, Any] | None
    answered_by: str | None
    created_at: float
    answered_at: float | None


check_field_order(Message, message)

_BY_ID = message.c.id == sa.bindparam("b_id")
_SELECT = sa.select(message).where(_BY_ID)
_ANSWER = message.update().where(_BY_ID, message.c.status == OPEN)
_COUNT_OPEN_OF = (
    sa.select(sa.func.count())
    .select_from(message)
    .where(message.c.execution_id == sa.bindparam("b_execution_id"), message.c.status == OPEN)
)


def insert(conn: sa.Connection, item: Message) -> None:
    """Add a new message."""
    conn.execute(message.insert(), dict(item.__dict__))


def get(conn: sa.Connection, message_id: str) -> Message:
    """The message ``message_id``."""
    row = conn.execute(_SELECT, {"b_id": message_id}).first()
    if row is None:
        raise errors.MessageNotFound(id=message_id)
    return Message(*row)


def count_open_of(conn: sa.Connection, execution_id: str) -> int:
    """How many messages of ``execution_id`` wait for an answer."""
    return int(conn.execute(_COUNT_OPEN_OF, {"b_execution_id": execution_id}).scalar_one())


def list_filtered(
    conn: sa.Connection,
    *,
    status: str | None = OPEN,
    execution_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Message]:
    """Messages, newest first. ``status='open'`` lists only those still answerable: open ones
    of executions that have not ended."""
    query = sa.select(message)
    if status == OPEN:
        query = query.join(execution, execution.c.id == message.c.execution_id).where(
            message.c.status == OPEN, execution.c.status.not_in(sorted(ENDED))
        )
    elif status is not None:
        query = query.where(message.c.status == status)
    if execution_id is not None:
        query = query.where(message.c.execution_id == execution_id)
    query = query.order_by(message.c.created_at.desc(), message.c.id).limit(limit).offset(offset)
    return [Message(*r) for r in conn.execute(query)]


def answer(
    conn: sa.Connection, message_id: str, response: dict[str, Any], by: str, at: float
) -> bool:
    """Record the answer of an open message; False when it was no longer open."""
    values: dict[str, Any] = {"b_id": message_id, "status": ANSWERED, "response": response}
    values.update(answered_by=by, answered_at=at)
    return conn.execute(_ANSWER, values).rowcount == 1
