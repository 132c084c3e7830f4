"""Login and logout pages: the session cookie holds an API token from the login use case."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from tether import errors
from tether.actions import users
from tether.actions.context import Context
from tether.web.auth import context
from tether.web.pages import common
from tether.web.pages.common import Form

router = APIRouter(route_class=common.PageRoute)


def _safe_next(target: str | None) -> str:
    """Only pages of this UI are followed after login: no open redirect."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return common.HOME_PATH


@router.get("/")
def root() -> Response:
    return common.redirect(common.HOME_PATH)


@router.get("/ui")
@router.get("/ui/")
def ui_root() -> Response:
    return common.redirect(common.HOME_PATH)


@router.get("/ui/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return common.render(request, "login.html", form={"next": _safe_next(next)})


@router.post("/ui/login")
def login(
    request: Request,
    form: Form = Depends(common.read_form),
    ctx: Context = Depends(context),
) -> Response:
    name, password = form.get("user_name", ""), form.get("password", "")
    try:
        if not name or not password:
            raise errors.BadCredentials()
        token, _user = users.login(ctx, name, password)
    except errors.BadCredentials as exc:
        shown = {"user_name": name, "next": _safe_next(form.get("next"))}
        return common.render(
            request, "login.html", status_code=401, form=shown, errors={"password": exc.message}
        )
    response = common.redirect(_safe_next(form.get("next")))
    response.set_cookie(
        common.SESSION_COOKIE,
        token,
        path=common.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/ui/logout")
def logout(request: Request, ctx: Context = Depends(context)) -> Response:
    token = request.cookies.get(common.SESSION_COOKIE)
    if token:
        users.logout(ctx, token)
    response = common.redirect(common.LOGIN_PATH)
    response.delete_cookie(common.SESSION_COOKIE, path=common.COOKIE_PATH)
    return response
