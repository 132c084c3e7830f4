"""REST routes for named connectors (admins only); credentials are write-only."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tether.actions import connectors
from tether.actions.context import Context
from tether.store.connectors import Connector
from tether.web.auth import context, require
from tether.web.routes.fields import JsonValue, Text

router = APIRouter(tags=["connectors"], dependencies=[Depends(require("manage connectors"))])
NAME = Field(
    pattern=r"^[A-Za-z0-9_.\-][A-Za-z0-9_.\- ]{0,199}$",
    description="letters, digits, _ . - and spaces",
)
TaskType = Literal["REST", "SMTP", "SSH", "SFTP", "SCP"]


class ConnectorChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: TaskType | None = None
    host: Text | None = Field(default=None, max_length=500)
    value: dict[str, JsonValue] | None = Field(
        default=None, description="inputs the connector sets (port, user, host_key, ...)"
    )
    credentials: dict[str, Text] | None = Field(
        default=None,
        description="write-only: password, key, token, ...; replaces all stored credentials",
    )
    description: Text | None = Field(default=None, max_length=10_000)


class ConnectorIn(ConnectorChange):
    name: str = NAME
    type: TaskType  # required on create


def _render(ctx: Context, item: Connector) -> dict[str, Any]:
    """A connector as the API shows it: the names of its credentials, never their values."""
    return {
        "name": item.name,
        "type": item.type,
        "host": item.host,
        "value": item.value,
        "credentials": connectors.credential_names(ctx, item),
        "description": item.description,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


@router.get("/connector")
def list_connectors(ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    return [_render(ctx, c) for c in connectors.list_all(ctx)]


@router.post("/connector", status_code=201)
def create_connector(body: ConnectorIn, ctx: Context = Depends(context)) -> dict[str, Any]:
    item = connectors.create(
        ctx,
        name=body.name,
        type=body.type,
        host=body.host,
        value=body.value,
        credentials=body.credentials,
        description=body.description or "",
    )
    return _render(ctx, item)


@router.get("/connector/{name}")
def get_connector(name: Text, ctx: Context = Depends(context)) -> dict[str, Any]:
    return _render(ctx, connectors.get(ctx, name))


@router.patch("/connector/{name}")
def change_connector(
    name: Text, body: ConnectorChange, ctx: Context = Depends(context)
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    return _render(ctx, connectors.change(ctx, name, **changes))


@router.delete("/connector/{name}", status_code=204)
def delete_connector(name: Text, ctx: Context = Depends(context)) -> None:
    connectors.delete(ctx, name)
