"""REST routes for settings: named JSON values that flows share."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tether import errors
from tether.actions import settings
from tether.actions.context import Context
from tether.web.auth import context, require
from tether.web.contract import answers
from tether.web.routes.fields import JsonValue, Text

router = APIRouter(
    tags=["settings"],
    dependencies=[Depends(require("use the workspace"))],
    responses=answers(errors.Unauthenticated, errors.Forbidden),
)


class SettingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-][A-Za-z0-9_.\- ]{0,199}$")
    value: JsonValue = None


class SettingValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: JsonValue = None


@router.get("/setting")
def list_settings(ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    return [{"name": s["name"], "value": s["value"]} for s in settings.list_all(ctx)]


@router.post("/setting", status_code=201)
def create_setting(body: SettingIn, ctx: Context = Depends(context)) -> dict[str, Any]:
    settings.put(ctx, body.name, body.value)
    return {"name": body.name, "value": body.value}


@router.get("/setting/{name}", responses=answers(errors.SettingNotFound))
def get_setting(name: Text, ctx: Context = Depends(context)) -> dict[str, Any]:
    return {"name": name, "value": settings.get(ctx, name)}


@router.patch("/setting/{name}", responses=answers(errors.SettingNotFound))
def change_setting(
    name: Text, body: SettingValue, ctx: Context = Depends(context)
) -> dict[str, Any]:
    settings.get(ctx, name)
    settings.put(ctx, name, body.value)
    return {"name": name, "value": body.value}


@router.delete("/setting/{name}", status_code=204, responses=answers(errors.SettingNotFound))
def delete_setting(name: Text, ctx: Context = Depends(context)) -> None:
    settings.delete(ctx, name)
