"""Flow pages: the list with search, a new flow, and a flow's editor, Run form and recent executions."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from tether import errors
from tether.actions import executions as execution_actions
from tether.actions import flows
from tether.actions.context import Context
from tether.store import executions
from tether.store.users import User
from tether.web.auth import context
from tether.web.pages import charts, common
from tether.web.pages.common import FieldErrors, Form
from tether.web.routes.executions import ExecutionIn
from tether.web.routes.flows import FlowChange, FlowIn

router = APIRouter(
    prefix="/ui/flows",
    route_class=common.PageRoute,
    dependencies=[Depends(common.require_page("use the workspace"))],
)
RECENT_EXECUTIONS = 20
CHARTED_EXECUTIONS = 50
NEW_SCRIPT = """def handler(system, this, inputs):
    this.log("hello", who=inputs.get("who"))
    this.save(output_value={"greeting": f"hello {inputs.get('who')}"})
"""


def _flow_url(name: str) -> str:
    return "/ui/flows/" + urllib.parse.quote(name)


def _script_field(exc: errors.TetherError) -> FieldErrors:
    """Which form field a use case's refusal belongs to."""
    if isinstance(exc, errors.FlowScriptInvalid | errors.FlowHandlerInvalid):
        return {"script": exc.message, "script_line": str(exc.fields.get("line", ""))}
    if isinstance(exc, errors.NameTaken):
        return {"name": exc.message}
    return {"form": exc.message}


@router.get("")
def list_flows(
    request: Request, search: str | None = None, ctx: Context = Depends(context)
) -> Response:
    found = flows.list_all(ctx, search or None)
    return common.render(request, "flows/list.html", flows=found, search=search or "")


@router.get("/new")
def new_flow_page(request: Request) -> Response:
    form = {"name": "", "description": "", "script": NEW_SCRIPT}
    return common.render(request, "flows/new.html", form=form)


@router.post("/new")
def create_flow(
    request: Request, form: Form = Depends(common.read_form), ctx: Context = Depends(context)
) -> Response:
    values = {k: form.get(k, "") for k in ("name", "description", "script")}
    body, problems = common.validate(FlowIn, values)
    if not problems:
        try:
            flows.create(ctx, body.name, body.script, body.description)
        except (errors.InvalidInput, errors.NameTaken) as exc:
            problems = _script_field(exc)
    if problems:
        return common.render(
            request, "flows/new.html", status_code=400, form=values, errors=problems
        )
    return common.redirect(_flow_url(body.name) + "?saved=1")


def _flow_page(
    request: Request,
    ctx: Context,
    name: str,
    *,
    edit: dict[str, str] | None = None,
    run: dict[str, str] | None = None,
    problems: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    flow = flows.get(ctx, name)
    with ctx.db.read() as conn:
        recent = executions.list_filtered(
            conn, flow_name=name, origin=executions.LOCAL, limit=CHARTED_EXECUTIONS
        )
        counts = executions.status_counts(conn, name)
    return common.render(
        request,
        "flows/page.html",
        status_code=status_code,
        flow=flow,
        edit=edit or {"script": flow.script, "description": flow.description},
        run=run or {"input_value": "{}", "name": "", "remote_workspace_name": ""},
        recent=recent[:RECENT_EXECUTIONS],
        counts=counts,
        bars=charts.duration_bars(recent),
        chart=charts,
        targets=execution_actions.remote_targets(ctx),
        errors=problems or {},
        is_saved=request.query_params.get("saved") == "1",
    )


@router.get("/{name}")
def flow_page(request: Request, name: str, ctx: Context = Depends(context)) -> Response:
    return _flow_page(request, ctx, name)


@router.post("/{name}")
def save_flow(
    request: Request,
    name: str,
    form: Form = Depends(common.read_form),
    ctx: Context = Depends(context),
) -> Response:
    edit = {"script": form.get("script", ""), "description": form.get("description", "")}
    body, problems = common.validate(FlowChange, edit)
    if not problems:
        try:
            flows.change(ctx, name, script=body.script, description=body.description)
        except errors.InvalidInput as exc:
            problems = _script_field(exc)
    if problems:
        return _flow_page(request, ctx, name, edit=edit, problems=problems, status_code=400)
    return common.redirect(_flow_url(name) + "?saved=1")


def _inputs(text: str) -> tuple[Any, FieldErrors]:
    """The Run form's inputs parsed as a JSON object, or the message for the field."""
    if not text.strip():
        return {}, {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, {
            "input_value": f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        }
    if not isinstance(value, dict):
        return None, {"input_value": 'inputs must be a JSON object, such as {"who": "world"}'}
    return value, {}


@router.post("/{name}/run")
def run_flow(
    request: Request,
    name: str,
    form: Form = Depends(common.read_form),
    user: User = Depends(common.page_user),
    ctx: Context = Depends(context),
) -> Response:
    run = {k: form.get(k, "") for k in ("input_value", "name", "remote_workspace_name")}
    inputs, problems = _inputs(run["input_value"])
    body = None
    if not problems:
        body, problems = common.validate(
            ExecutionIn,
            {
                "flow_name": name,
                "input_value": inputs,
                "name": run["name"].strip() or None,
                "remote_workspace_name": run["remote_workspace_name"].strip() or None,
            },
        )
    if body is not None:
        try:
            ex = execution_actions.start(
                ctx,
                flow_name=body.flow_name,
                input_value=body.input_value,
                name=body.name,
                remote_workspace_name=body.remote_workspace_name,
                owner=user.name,
            )
        except errors.RemoteWorkspaceUnusable as exc:
            problems = {"remote_workspace_name": exc.message}
        except errors.InvalidInput as exc:
            problems = {"input_value": exc.message}
        else:
            return common.redirect(f"/ui/executions/{ex.id}")
    return _flow_page(request, ctx, name, run=run, problems=problems, status_code=400)
