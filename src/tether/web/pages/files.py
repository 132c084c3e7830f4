"""File pages: the named contents flows share; list, view, create, edit (text) and delete.

The same role rules and request model as the API's /file routes. A name may hold '/', so a
file's page is /ui/files/NAME with the rest of the path, and deleting is an action of its form.
"""

from __future__ import annotations

import base64
import urllib.parse

from fastapi import APIRouter, Depends, Request, Response

from tether.actions import files
from tether.actions.context import Context
from tether.web.auth import context
from tether.web.pages import common
from tether.web.pages.common import Form
from tether.web.routes.files import FileIn

router = APIRouter(
    prefix="/ui/files",
    route_class=common.PageRoute,
    dependencies=[Depends(common.require_page("use the workspace"))],
)
DELETE = "delete"
MAX_SHOWN_BASE64_CHARS = 20_000


def _file_url(name: str) -> str:
    return "/ui/files/" + urllib.parse.quote(name)


@router.get("")
def list_files(request: Request, ctx: Context = Depends(context)) -> Response:
    return common.render(request, "files/list.html", files=files.list_all(ctx))


@router.get("/new")
def new_file_page(request: Request) -> Response:
    return common.render(request, "files/form.html", form={"name": "", "content": ""}, is_new=True)


@router.post("/new")
def create_file(
    request: Request, form: Form = Depends(common.read_form), ctx: Context = Depends(context)
) -> Response:
    values = {"name": form.get("name", "").strip(), "content": form.get("content", "")}
    body, problems = common.validate(FileIn, values)
    if body is not None and files.exists(ctx, body.name):
        problems = {"name": f"a file named '{body.name}' exists: open it to change it"}
    if body is None or problems:
        return common.render(
            request, "files/form.html", status_code=400, form=values, errors=problems, is_new=True
        )
    files.put(ctx, body.name, (body.content or "").encode())
    return common.redirect(_file_url(body.name) + "?saved=1")


@router.get("/{name:path}")
def file_page(request: Request, name: str, ctx: Context = Depends(context)) -> Response:
    content = files.get(ctx, name)
    try:
        text: str | None = content.decode()
    except UnicodeDecodeError:
        text = None
    shown = base64.b64encode(content[: MAX_SHOWN_BASE64_CHARS * 3 // 4]).decode()
    return common.render(
        request,
        "files/form.html",
        form={"name": name, "content": text or ""},
        is_new=False,
        is_text=text is not None,
        size=len(content),
        base64_head=shown,
        is_cut=len(shown) * 3 // 4 < len(content),
        is_saved=request.query_params.get("saved") == "1",
    )


@router.post("/{name:path}")
def change_file(
    request: Request,
    name: str,
    form: Form = Depends(common.read_form),
    ctx: Context = Depends(context),
) -> Response:
    if form.get("action") == DELETE:
        files.delete(ctx, name)
        return common.redirect("/ui/files")
    content = files.get(ctx, name)  # 404 for a file that is not there
    values = {"name": name, "content": form.get("content", "")}
    body, problems = common.validate(FileIn, values)
    if body is None or problems:
        return common.render(
            request,
            "files/form.html",
            status_code=400,
            form=values,
            errors=problems,
            is_new=False,
            is_text=True,
            size=len(content),
        )
    files.put(ctx, name, (body.content or "").encode())
    return common.redirect(_file_url(name) + "?saved=1")
