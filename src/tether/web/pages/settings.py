"""Settings pages: the named JSON values flows share; list, view, create, edit and delete.

The same role rules and request model as the API's /setting routes.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from tether.actions import settings
from tether.actions.context import Context
from tether.web.auth import context
from tether.web.pages import common
from tether.web.pages.common import FieldErrors, Form
from tether.web.routes.settings import SettingIn

router = APIRouter(
    prefix="/ui/settings",
    route_class=common.PageRoute,
    dependencies=[Depends(common.require_page("use the workspace"))],
)
DELETE = "delete"


def _setting_url(name: str) -> str:
    return "/ui/settings/" + urllib.parse.quote(name)


def parse_json(text: str) -> tuple[Any, str | None]:
    """``text`` as a JSON value, or the message that names the line and column."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"


def _checked(name: str, text: str) -> tuple[SettingIn | None, FieldErrors]:
    value, problem = parse_json(text)
    if problem:
        return None, {"value": problem}
    body, problems = common.validate(SettingIn, {"name": name, "value": value})
    return body, problems


@router.get("")
def list_settings(request: Request, ctx: Context = Depends(context)) -> Response:
    found = settings.list_all(ctx)
    return common.render(request, "settings/list.html", settings=found)


@router.get("/new")
def new_setting_page(request: Request) -> Response:
    form = {"name": "", "value": "{}"}
    return common.render(request, "settings/form.html", form=form, is_new=True)


@router.post("/new")
def create_setting(
    request: Request, form: Form = Depends(common.read_form), ctx: Context = Depends(context)
) -> Response:
    values = {"name": form.get("name", "").strip(), "value": form.get("value", "")}
    body, problems = _checked(values["name"], values["value"])
    if body is not None and settings.exists(ctx, body.name):
        problems = {"name": f"a setting named '{body.name}' exists: open it to change it"}
    if body is None or problems:
        return common.render(
            request,
            "settings/form.html",
            status_code=400,
            form=values,
            errors=problems,
            is_new=True,
        )
    settings.put(ctx, body.name, body.value)
    return common.redirect(_setting_url(body.name) + "?saved=1")


@router.get("/{name}")
def setting_page(request: Request, name: str, ctx: Context = Depends(context)) -> Response:
    value = settings.get(ctx, name)
    form = {"name": name, "value": json.dumps(value, indent=2, ensure_ascii=False)}
    return common.render(
        request,
        "settings/form.html",
        form=form,
        is_new=False,
        is_saved=request.query_params.get("saved") == "1",
    )


@router.post("/{name}")
def change_setting(
    request: Request,
    name: str,
    form: Form = Depends(common.read_form),
    ctx: Context = Depends(context),
) -> Response:
    if form.get("action") == DELETE:
        settings.delete(ctx, name)
        return common.redirect("/ui/settings")
    settings.get(ctx, name)  # 404 for a setting that is not there
    values = {"name": name, "value": form.get("value", "")}
    body, problems = _checked(name, values["value"])
    if body is None or problems:
        return common.render(
            request,
            "settings/form.html",
            status_code=400,
            form=values,
            errors=problems,
            is_new=False,
        )
    settings.put(ctx, name, body.value)
    return common.redirect(_setting_url(name) + "?saved=1")
