"""User pages (admins): the list, adding a user, changing a role, disabling and enabling."""

from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Depends, Request, Response

from tether import errors
from tether.actions import users
from tether.actions.context import Context
from tether.store.users import User
from tether.web.auth import context
from tether.web.pages import common
from tether.web.pages.common import FieldErrors, Form
from tether.web.routes.users import UserChange, UserIn

router = APIRouter(prefix="/ui/users", route_class=common.PageRoute)
manager = common.require_page("manage users")


def _users_page(
    request: Request,
    ctx: Context,
    *,
    form: Form | None = None,
    problems: FieldErrors | None = None,
    row_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return common.render(
        request,
        "users/list.html",
        status_code=status_code,
        users=users.list_all(ctx),
        roles=users.ROLES,
        form=form or {"name": "", "role": users.USER},
        errors=problems or {},
        row_errors=row_errors or {},
        notice=request.query_params.get("notice", ""),
    )


@router.get("")
def list_users(
    request: Request, _user: User = Depends(manager), ctx: Context = Depends(context)
) -> Response:
    return _users_page(request, ctx)


@router.post("")
def create_user(
    request: Request,
    form: Form = Depends(common.read_form),
    actor: User = Depends(manager),
    ctx: Context = Depends(context),
) -> Response:
    typed = {k: form.get(k, "") for k in ("name", "password", "role")}
    body, problems = common.validate(UserIn, typed)
    if not problems:
        try:
            users.create(ctx, actor, body.name, body.password, body.role)
        except errors.NameTaken as exc:
            problems = {"name": exc.message}
        except errors.Forbidden as exc:
            problems = {"role": exc.message}
    if problems:
        shown = {"name": typed["name"], "role": typed["role"], "password": typed["password"]}
        return _users_page(request, ctx, form=shown, problems=problems, status_code=400)
    return common.redirect("/ui/users?" + urllib.parse.urlencode({"notice": f"added {body.name}"}))


def _change(
    request: Request, ctx: Context, actor: User, name: str, values: dict[str, object]
) -> Response:
    body, problems = common.validate(UserChange, values)
    try:
        if problems:
            raise errors.InvalidInput(detail="; ".join(problems.values()))
        users.change(ctx, actor, name, role=body.role, is_enabled=body.is_enabled)
    except (errors.InvalidInput, errors.Forbidden, errors.LastAdmin) as exc:
        # A refused value is the form's fault (400); the last admin is the store's state (409).
        status = errors.http_status(exc) if isinstance(exc, errors.LastAdmin) else 400
        return _users_page(request, ctx, row_errors={name: exc.message}, status_code=status)
    notice = f"changed {name}"
    return common.redirect("/ui/users?" + urllib.parse.urlencode({"notice": notice}))


@router.post("/{name}/role")
def change_role(
    request: Request,
    name: str,
    form: Form = Depends(common.read_form),
    actor: User = Depends(manager),
    ctx: Context = Depends(context),
) -> Response:
    return _change(request, ctx, actor, name, {"role": form.get("role", "")})


@router.post("/{name}/enabled")
def change_enabled(
    request: Request,
    name: str,
    form: Form = Depends(common.read_form),
    actor: User = Depends(manager),
    ctx: Context = Depends(context),
) -> Response:
    if name == actor.name and form.get("is_enabled") != "on":
        message = "you cannot disable yourself: ask another admin"
        return _users_page(request, ctx, row_errors={name: message}, status_code=400)
    return _change(request, ctx, actor, name, {"is_enabled": form.get("is_enabled") == "on"})
