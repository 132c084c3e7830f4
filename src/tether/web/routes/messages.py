"""REST routes for messages: the open forms of executions, and answering one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query

from tether import errors
from tether.actions import messages
from tether.actions.context import Context
from tether.store.messages import Message
from tether.store.users import User
from tether.web import render
from tether.web.auth import context, current_user, require
from tether.web.contract import answers
from tether.web.routes.fields import MAX_OFFSET, JsonValue, Text

# As executions: whoever may use the workspace sees its executions, so sees and answers
# their messages too (docs/flow_api.md, "Messages").
router = APIRouter(
    tags=["messages"],
    dependencies=[Depends(require("use the workspace"))],
    responses=answers(errors.Unauthenticated, errors.Forbidden),
)


def as_json(item: Message) -> dict[str, Any]:
    """A message as the API shows it."""
    return {
        "id": item.id,
        "execution_id": item.execution_id,
        "subject": item.subject,
        "message_type": item.message_type,
        "body": item.body,
        "status": item.status,
        "response": item.response,
        "answered_by": item.answered_by,
        "created_at": render.iso(item.created_at),
        "answered_at": render.iso(item.answered_at),
    }


@router.get("/message")
def list_messages(
    status: Literal["open", "answered", "all"] = "open",
    execution_id: Text | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    ctx: Context = Depends(context),
) -> list[dict[str, Any]]:
    """Messages, newest first; by default the open ones of executions that have not ended."""
    found = messages.list_filtered(
        ctx,
        status=None if status == "all" else status,
        execution_id=execution_id,
        limit=limit,
        offset=offset,
    )
    return [as_json(m) for m in found]


@router.get("/message/{message_id}", responses=answers(errors.MessageNotFound))
def get_message(message_id: Text, ctx: Context = Depends(context)) -> dict[str, Any]:
    return as_json(messages.get(ctx, message_id))


@router.post(
    "/message/{message_id}/response",
    responses=answers(errors.MessageNotFound, errors.AnswerInvalid, errors.MessageClosed),
)
def respond(
    message_id: Text,
    response: Annotated[
        dict[str, JsonValue],
        Body(description="the values of the form's fields by key; a submit button's key: true"),
    ],
    user: User = Depends(current_user),
    ctx: Context = Depends(context),
) -> dict[str, Any]:
    """Answer an open message; an answer that does not fit its form is refused (400) and the
    message stays open."""
    return as_json(messages.respond(ctx, message_id, response, user=user.name))
