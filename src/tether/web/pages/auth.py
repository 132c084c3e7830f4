"""Login and logout pages: the session cookie holds an API token from the login use case."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request, Response

from tether import errors
from tether.web.auth import log_in, workspace_context
from tether.web.pages import common, forgery
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
    return _login_form(request, {"next": _safe_next(next)})


def _login_form(
    request: Request, form: Form, status_code: int = 200, problems: dict[str, str] | None = None
) -> Response:
    """The login page, its form token bound to a random value in a cookie of its own."""
    nonce = request.cookies.get(common.login_cookie(request)) or secrets.token_urlsafe(32)
    secret = workspace_context(request).secret
    request.state.csrf_token = forgery.form_token(secret, forgery.LOGIN_PURPOSE, nonce)
    response = common.render(
        request, "login.html", status_code=status_code, form=form, errors=problems or {}
    )
    _set_cookie(request, response, common.login_cookie(request), nonce)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, **more: int) -> None:
    response.set_cookie(
        name,
        value,
        path=common.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        **more,  # type: ignore[arg-type]
    )


@router.post("/ui/login")
async def login(request: Request, form: Form = Depends(common.read_form)) -> Response:
    name, password = form.get("user_name", ""), form.get("password", "")
    shown = {"user_name": name, "next": _safe_next(form.get("next"))}
    try:
        if not name or not password:
            raise errors.BadCredentials()
        token, _user = await log_in(request, name, password)
    except (errors.BadCredentials, errors.TooManyLogins) as exc:
        status = errors.http_status(exc)
        response = _login_form(request, shown, status, {"password": exc.message})
        if isinstance(exc, errors.TooManyLogins):
            response.headers["Retry-After"] = str(exc.fields["retry_after_s"])
        return response
    response = common.redirect(shown["next"])
    ttl_s = int(common.sign_ins(request).lifetimes.ttl_s)
    _set_cookie(request, response, common.session_cookie(request), token, max_age=ttl_s)
    return response


@router.post("/ui/logout")
def logout(request: Request) -> Response:
    token = request.cookies.get(common.session_cookie(request))
    if token:
        common.sign_ins(request).logout(token)
    response = common.redirect(common.LOGIN_PATH)
    response.delete_cookie(common.session_cookie(request), path=common.COOKIE_PATH)
    return response
