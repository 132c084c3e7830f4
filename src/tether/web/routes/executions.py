"""REST routes for executions, their logs, and cancelling them."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from tether import errors
from tether.actions import executions as execution_actions
from tether.actions import messages
from tether.actions.context import Context
from tether.statuses import Status
from tether.store import executions
from tether.store.users import User
from tether.web import render
from tether.web.auth import context, current_user, require
from tether.web.contract import answers
from tether.web.routes import sync_configs as sync_config_routes
from tether.web.routes.fields import MAX_OFFSET, JsonValue, Text

router = APIRouter(
    tags=["executions"],
    dependencies=[Depends(require("use the workspace"))],
    responses=answers(errors.Unauthenticated, errors.Forbidden),
)

Origin = Literal["local", "received", "mirror"]


class ExecutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow_name: Text = Field(min_length=1, max_length=200)
    # execution_actions.checked_inputs refuses any other value, with its own message
    input_value: JsonValue = Field(default=None, json_schema_extra={"type": ["object", "null"]})
    name: Text | None = Field(default=None, max_length=200)
    remote_workspace_name: Text | None = Field(default=None, max_length=100)
    run: StrictBool = True
    max_runtime_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)


@router.post(
    "/execution",
    status_code=201,
    responses=answers(
        errors.InvalidInput,
        errors.FlowNotFound,
        errors.SyncConfigNotFound,
        errors.RemoteWorkspaceUnusable,
    ),
)
def start_execution(
    body: ExecutionIn, user: User = Depends(current_user), ctx: Context = Depends(context)
) -> dict[str, Any]:
    ex = execution_actions.start(
        ctx,
        flow_name=body.flow_name,
        input_value=body.input_value,
        name=body.name,
        run=body.run,
        remote_workspace_name=body.remote_workspace_name,
        max_runtime_s=body.max_runtime_s,
        owner=user.name,
    )
    return render.execution(ex)


@router.get("/execution")
def list_executions(
    status: Status | None = None,
    flow_name: Text | None = None,
    parent_id: Text | None = None,
    origin: Origin | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    ctx: Context = Depends(context),
) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        found = executions.list_filtered(
            conn,
            status=status,
            flow_name=flow_name,
            parent_id=parent_id,
            origin=origin,
            limit=limit,
            offset=offset,
        )
    return [render.execution(ex) for ex in found]


@router.get("/execution/{execution_id}", responses=answers(errors.ExecutionNotFound))
def get_execution(
    request: Request, execution_id: Text, ctx: Context = Depends(context)
) -> dict[str, Any]:
    ex = execution_actions.get(ctx, execution_id)
    record = render.execution(ex)
    record["waiting_on"] = waits_of(request, ctx, ex)
    return record


def waits_of(request: Request, ctx: Context, ex: Any) -> list[dict[str, Any]]:
    """What an execution waits on: its remote executions' links, and its open messages."""
    links = [link_wait(request, w, link) for w, link in execution_actions.remote_waits(ctx, ex)]
    return links + [message_wait(m) for m in messages.open_of(ctx, ex.id)]


def message_wait(item: Any) -> dict[str, Any]:
    """An open message of the execution: it waits for a person to answer it."""
    return {
        "message_id": item.id,
        "subject": item.subject,
        "since": render.iso(item.created_at),
        "reason": f"message '{item.subject}' waits for an answer: answer it under Messages "
        f"(POST /api/latest/message/{item.id}/response)",
    }


def link_wait(request: Request, waited: Any, link: Any) -> dict[str, Any]:
    """Why a remote execution has not ended yet, in the words of its link's state."""
    base = {"execution_id": waited.id, "status": waited.status, "sync_config": waited.sync_config}
    if link is None:
        return {
            **base,
            "link_state": "missing",
            "since": None,
            "last_error": None,
            "reason": f"sync config '{waited.sync_config}' no longer exists: the execution cannot be reached",
        }
    config, state = link
    effective, last_error = sync_config_routes.effective_status(request, config, state)
    since = state.failing_since if effective == "failing" else state.last_exchange_at
    reasons = {
        "connected": f"the link is connected; the execution is {waited.status} in the linked workspace",
        "connecting": "the link has not exchanged with the linked workspace yet (or not lately): "
        "is the other side running, and can the dialing side reach the listener?",
        "failing": f"the link is failing: {last_error}",
        "disabled": "the link is disabled: enable sync config "
        f"'{config.name}' to deliver and receive",
    }
    return {
        **base,
        "link_state": effective,
        "since": render.iso(since),
        "last_error": last_error,
        "reason": reasons.get(effective, effective),
    }


@router.get("/execution/{execution_id}/log", responses=answers(errors.ExecutionNotFound))
def get_log(
    execution_id: Text,
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    limit: int = Query(default=1000, ge=1, le=10000),
    ctx: Context = Depends(context),
) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        executions.get(conn, execution_id)
        entries = executions.read_log(conn, execution_id, offset, limit)
    return [render.log_entry(e) for e in entries]


@router.post(
    "/execution/{execution_id}/cancel",
    responses=answers(errors.ExecutionNotFound, errors.ExecutionEnded),
)
def cancel_execution(execution_id: Text, ctx: Context = Depends(context)) -> dict[str, Any]:
    return render.execution(execution_actions.cancel(ctx, execution_id))


@router.post(
    "/execution/{execution_id}/run",
    responses=answers(errors.ExecutionNotFound, errors.Conflict),
)
def run_execution(execution_id: Text, ctx: Context = Depends(context)) -> dict[str, Any]:
    return render.execution(execution_actions.run_pending(ctx, execution_id))
