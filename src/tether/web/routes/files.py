"""REST routes for files: named contents that flows share, sent as text or base64."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tether import errors
from tether.actions import files
from tether.actions.context import Context
from tether.web.auth import context, require
from tether.web.contract import answers
from tether.web.routes.fields import Text, Unicode, omittable

router = APIRouter(
    tags=["files"],
    dependencies=[Depends(require("use the workspace"))],
    responses=answers(errors.Unauthenticated, errors.Forbidden),
)


# What base64.b64decode(validate=True) takes: whole quadruples of the base64 alphabet.
BASE64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class FileIn(BaseModel):
    # _content refuses both or neither (with its message); the document says it as oneOf.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["content"]}, {"required": ["content_base64"]}]},
    )
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-][A-Za-z0-9_.\-/ ]{0,199}$")
    content: Unicode = omittable()
    content_base64: str = omittable({"pattern": BASE64})


def _content(body: FileIn) -> bytes:
    if (body.content is None) == (body.content_base64 is None):
        raise errors.InvalidInput(detail="send exactly one of 'content' (text) or 'content_base64'")
    if body.content is not None:
        return body.content.encode()
    try:
        return base64.b64decode(body.content_base64 or "", validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: characters beyond ASCII
        raise errors.InvalidInput(detail=f"content_base64 is not valid base64: {exc}") from exc


def _render(name: str, content: bytes) -> dict[str, Any]:
    try:
        text: str | None = content.decode()
    except UnicodeDecodeError:
        text = None
    return {
        "name": name,
        "size": len(content),
        "content": text,
        "content_base64": base64.b64encode(content).decode(),
    }


@router.get("/file")
def list_files(ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    return [{"name": f["name"], "size": f["size"]} for f in files.list_all(ctx)]


@router.post("/file", status_code=201, responses=answers(errors.InvalidInput))
def put_file(body: FileIn, ctx: Context = Depends(context)) -> dict[str, Any]:
    content = _content(body)
    files.put(ctx, body.name, content)
    return _render(body.name, content)


@router.get("/file/{name}", responses=answers(errors.FileNotFound))
def get_file(name: Text, ctx: Context = Depends(context)) -> dict[str, Any]:
    return _render(name, files.get(ctx, name))


@router.delete("/file/{name}", status_code=204, responses=answers(errors.FileNotFound))
def delete_file(name: Text, ctx: Context = Depends(context)) -> None:
    files.delete(ctx, name)
