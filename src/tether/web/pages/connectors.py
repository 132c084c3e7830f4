"""Connector pages (organization and workspace admins): list, create, edit and delete the
named connectors of ``this.connect``.

Credentials are write-only here as in the API: a page shows their names, never their values,
and a form that is refused does not send back the credentials it carried.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from tether import errors
from tether.actions import connectors
from tether.actions.context import Context
from tether.store.connectors import Connector
from tether.web.auth import context
from tether.web.pages import common
from tether.web.pages.common import FieldErrors, Form
from tether.web.routes.connectors import ConnectorChange, ConnectorIn, TaskType

router = APIRouter(
    prefix="/ui/connectors",
    route_class=common.PageRoute,
    dependencies=[Depends(common.require_page("manage connectors"))],
)
TYPES: tuple[str, ...] = TaskType.__args__  # type: ignore[attr-defined]
CREDENTIAL_ROWS = 4  # name/value pairs a form offers
DELETE, SAVE = "delete", "save"
CLEAR = "clear_credentials"
RETYPE = "enter the credentials again: a refused form does not keep them"


def _url(name: str) -> str:
    return "/ui/connectors/" + urllib.parse.quote(name)


@router.get("")
def list_connectors(request: Request, ctx: Context = Depends(context)) -> Response:
    found = [(c, connectors.credential_names(ctx, c)) for c in connectors.list_all(ctx)]
    return common.render(request, "connectors/list.html", connectors=found)


@router.get("/new")
def new_connector_page(request: Request) -> Response:
    form = {"name": "", "type": "REST", "host": "", "value": "{}", "description": ""}
    return _form_page(request, form, is_new=True)


@router.post("/new")
def create_connector(
    request: Request, form: Form = Depends(common.read_form), ctx: Context = Depends(context)
) -> Response:
    values, problems = _values(form, is_new=True)
    body = None
    if not problems:
        body, problems = common.validate(ConnectorIn, values)
    if body is not None and not problems:
        try:
            connectors.create(ctx, **body.model_dump(exclude_none=True))
            return common.redirect(_url(body.name) + "?saved=1")
        except (errors.ConnectorInvalid, errors.NameTaken) as exc:
            problems = _problem(exc)
    return _refused(request, form, problems, is_new=True)


@router.get("/{name}")
def connector_page(request: Request, name: str, ctx: Context = Depends(context)) -> Response:
    item = connectors.get(ctx, name)
    return _form_page(
        request,
        _form_from(item),
        names=connectors.credential_names(ctx, item),
        is_saved=request.query_params.get("saved") == "1",
    )


@router.post("/{name}")
def change_connector(
    request: Request,
    name: str,
    form: Form = Depends(common.read_form),
    ctx: Context = Depends(context),
) -> Response:
    item = connectors.get(ctx, name)
    if form.get("action") == DELETE:
        connectors.delete(ctx, name)
        return common.redirect("/ui/connectors?deleted=" + urllib.parse.quote(name))
    values, problems = _values(form, is_new=False)
    body = None
    if not problems:
        body, problems = common.validate(ConnectorChange, values)
    if body is not None and not problems:
        try:
            connectors.change(ctx, name, **body.model_dump(exclude_unset=True))
            return common.redirect(_url(name) + "?saved=1")
        except errors.ConnectorInvalid as exc:
            problems = _problem(exc)
    form = {**form, "name": name}
    names = connectors.credential_names(ctx, item)
    return _refused(request, form, problems, is_new=False, names=names)


def _values(form: Form, *, is_new: bool) -> tuple[dict[str, Any], FieldErrors]:
    """The API's request body from the form's fields, or the per-field problems."""
    problems: FieldErrors = {}
    values: dict[str, Any] = {
        "type": form.get("type", ""),
        "host": form.get("host", "").strip() or None,
        "description": form.get("description", ""),
    }
    if is_new:
        values["name"] = form.get("name", "").strip()
    try:
        values["value"] = json.loads(form.get("value", "").strip() or "{}")
    except json.JSONDecodeError as exc:
        problems["value"] = f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
    credentials, problem = _credentials(form)
    if problem:
        problems["credentials"] = problem
    if form.get(CLEAR) == "on":
        values["credentials"] = {}
    elif credentials or is_new:
        values["credentials"] = credentials
    return values, problems


def _credentials(form: Form) -> tuple[dict[str, str], str | None]:
    """The credentials typed into the form's rows; none typed leaves the stored ones."""
    found: dict[str, str] = {}
    for row in range(CREDENTIAL_ROWS):
        key = form.get(f"credential_name_{row}", "").strip()
        value = form.get(f"credential_value_{row}", "")
        if value and not key:
            return {}, f"row {row + 1} has a value but no name"
        if key and not value:
            return {}, f"credential '{key}' has no value"
        if key:
            found[key] = value
    return found, None


def _problem(exc: errors.TetherError) -> FieldErrors:
    field = exc.fields.get("field") if isinstance(exc, errors.ConnectorInvalid) else "name"
    return {str(field or "form"): exc.message}


def _refused(
    request: Request, form: Form, problems: FieldErrors, *, is_new: bool, names: Any = ()
) -> Response:
    kept = {k: v for k, v in form.items() if not k.startswith("credential_value_")}
    if any(form.get(f"credential_value_{row}") for row in range(CREDENTIAL_ROWS)):
        problems = {**problems, "credentials": problems.get("credentials", RETYPE)}
    return _form_page(request, kept, errors=problems, is_new=is_new, names=names, status_code=400)


def _form_from(item: Connector) -> Form:
    return {
        "name": item.name,
        "type": item.type,
        "host": item.host or "",
        "value": json.dumps(item.value, indent=2),
        "description": item.description,
    }


def _form_page(request: Request, form: Form, status_code: int = 200, **values: Any) -> Response:
    values.setdefault("is_new", False)
    values.setdefault("names", ())
    return common.render(
        request,
        "connectors/form.html",
        status_code=status_code,
        form=form,
        types=TYPES,
        rows=range(CREDENTIAL_ROWS),
        **values,
    )
