"""REST routes for flows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tether import errors
from tether.actions import flows
from tether.actions.context import Context
from tether.web import render
from tether.web.auth import context, require
from tether.web.contract import answers
from tether.web.routes.fields import Text

router = APIRouter(
    tags=["flows"],
    dependencies=[Depends(require("use the workspace"))],
    responses=answers(errors.Unauthenticated, errors.Forbidden),
)
NAME = Field(
    pattern=r"^[A-Za-z0-9_.\-][A-Za-z0-9_.\- ]{0,199}$",
    description="letters, digits, _ . - and spaces",
)


class FlowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = NAME
    script: Text = Field(max_length=1_000_000)
    description: Text = Field(default="", max_length=10_000)


class FlowChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    script: Text | None = Field(default=None, max_length=1_000_000)
    description: Text | None = Field(default=None, max_length=10_000)


@router.get("/flow")
def list_flows(search: Text | None = None, ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    return [render.flow(f) for f in flows.list_all(ctx, search)]


@router.post(
    "/flow",
    status_code=201,
    responses=answers(errors.FlowScriptInvalid, errors.FlowHandlerInvalid, errors.NameTaken),
)
def create_flow(body: FlowIn, ctx: Context = Depends(context)) -> dict[str, Any]:
    return render.flow(flows.create(ctx, body.name, body.script, body.description))


class FlowScript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = NAME
    script: Text = Field(max_length=1_000_000)


class FlowBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flows: list[FlowScript] = Field(max_length=1000)


@router.post("/flow/apply", responses=answers(errors.InvalidInput, errors.FlowScriptsRefused))
def apply_flows(body: FlowBatch, ctx: Context = Depends(context)) -> dict[str, list[str]]:
    """Create or update every flow given, in one transaction: one refused script saves none.

    Flows not named are left alone; each name may appear once. Used by `tether flow push`.
    """
    scripts = {item.name: item.script for item in body.flows}
    if len(scripts) != len(body.flows):
        raise errors.InvalidInput(detail="a flow name appears twice: give each flow once")
    return flows.apply_all(ctx, scripts)


@router.get("/flow/{name}", responses=answers(errors.FlowNotFound))
def get_flow(name: Text, ctx: Context = Depends(context)) -> dict[str, Any]:
    return render.flow(flows.get(ctx, name))


@router.patch(
    "/flow/{name}",
    responses=answers(errors.FlowNotFound, errors.FlowScriptInvalid, errors.FlowHandlerInvalid),
)
def change_flow(name: Text, body: FlowChange, ctx: Context = Depends(context)) -> dict[str, Any]:
    return render.flow(flows.change(ctx, name, script=body.script, description=body.description))


@router.delete("/flow/{name}", status_code=204, responses=answers(errors.FlowNotFound))
def delete_flow(name: Text, ctx: Context = Depends(context)) -> None:
    flows.delete(ctx, name)
