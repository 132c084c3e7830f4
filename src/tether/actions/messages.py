"""Message use cases: an execution asks, a person answers, the waiting execution resumes.

Each function is one transaction. An answer announces the message's id (Event.MESSAGE),
which reaches other processes of a shared store by NOTIFY; waiters also poll.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from tether import errors, limits
from tether.actions import forms
from tether.actions.context import Context
from tether.statuses import ENDED, Event
from tether.store import executions, messages
from tether.store.messages import Message


def create(
    ctx: Context,
    execution_id: str,
    *,
    subject: Any,
    message_type: Any = None,
    body: Any = None,
    message: Any = None,
    request: Any = None,
) -> Message:
    """Create an open message of a running execution with a checked form."""
    item = Message(
        id=str(uuid.uuid4()),
        execution_id=execution_id,
        subject=forms.subject(subject),
        message_type=forms.message_type(message_type),
        body=forms.body_of(body, message, request),
        status=messages.OPEN,
        response=None,
        answered_by=None,
        created_at=ctx.now(),
        answered_at=None,
    )
    with ctx.transaction() as tx:
        ex = executions.get(tx.conn, execution_id)
        if ex.status in ENDED:
            raise errors.ExecutionEnded(id=ex.id, status=ex.status)
        if messages.count_open_of(tx.conn, execution_id) >= limits.MAX_OPEN_MESSAGES:
            raise errors.FormInvalid(
                detail=f"execution '{execution_id}' has {limits.MAX_OPEN_MESSAGES} open messages, "
                "the most it may have at once: wait for answers before asking more"
            )
        messages.insert(tx.conn, item)
    return item


def get(ctx: Context, message_id: str) -> Message:
    with ctx.db.read() as conn:
        return messages.get(conn, message_id)


def list_filtered(ctx: Context, **filters: Any) -> list[Message]:
    with ctx.db.read() as conn:
        return messages.list_filtered(conn, **filters)


def respond(ctx: Context, message_id: str, response: Any, *, user: str) -> Message:
    """Answer an open message; a bad answer is refused and the message stays open."""
    with ctx.transaction() as tx:
        item = messages.get(tx.conn, message_id)
        if item.status != messages.OPEN:
            raise errors.MessageClosed(
                id=message_id, detail=f"it was answered already by '{item.answered_by}'"
            )
        ex = executions.get(tx.conn, item.execution_id)
        if ex.status in ENDED:
            raise errors.MessageClosed(
                id=message_id,
                detail=f"its execution '{ex.id}' has ended ({ex.status}) and waits for no answer",
            )
        values = forms.check_answer(message_id, item.body, response)
        now = ctx.now()
        if not messages.answer(tx.conn, message_id, values, user, now):
            raise errors.MessageClosed(id=message_id, detail="it was answered meanwhile")
        tx.publish(Event.MESSAGE, message_id)
    return dataclasses.replace(
        item, status=messages.ANSWERED, response=values, answered_by=user, answered_at=now
    )


def open_of(ctx: Context, execution_id: str) -> list[Message]:
    """The open messages of an execution that has not ended: what it may be waiting for."""
    return list_filtered(ctx, status=messages.OPEN, execution_id=execution_id)
