"""What every HTML page shares: the session cookie, the page route that turns errors into pages
and refuses forged requests, form reading, and template rendering. Pages call use cases; they
never speak SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from tether import errors
from tether.actions import sessions, users
from tether.store.users import User
from tether.web.auth import workspace_context
from tether.web.pages import forgery, times

SESSION_COOKIE_PREFIX = "tether_session_"
COOKIE_PATH = "/ui"
LOGIN_PATH = "/ui/login"
HOME_PATH = "/ui/flows"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

Form = dict[str, str]
FieldErrors = dict[str, str]


def pretty(value: Any) -> str:
    """``value`` as indented JSON for display."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def build_templates() -> Jinja2Templates:
    """The page templates with tether's filters."""
    templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
    templates.env.filters["when"] = times.when
    templates.env.filters["iso"] = times.iso
    templates.env.filters["span"] = times.span
    templates.env.globals["elapsed"] = times.elapsed
    templates.env.filters["pretty"] = pretty
    return templates


# A compiled template cache, like a compiled regular expression: immutable after import.
TEMPLATES = build_templates()


def session_cookie(request: Request) -> str:
    """The session cookie's name: its own per workspace (from its secret), so that two
    workspaces on one host (cookies ignore ports) do not log each other out."""
    secret = workspace_context(request).secret
    tag = hmac.new(secret, b"session cookie", hashlib.sha256).hexdigest()[:12]
    return SESSION_COOKIE_PREFIX + tag


def login_cookie(request: Request) -> str:
    """The cookie whose random value the login form's token belongs to."""
    return session_cookie(request) + "_login"


def sign_ins(request: Request) -> sessions.SignIns:
    """The workspace's logins and sessions, built by create_app."""
    return cast(sessions.SignIns, request.app.state.sign_ins)


def page_user(request: Request) -> User:
    """The user whose session cookie the request carries."""
    token = request.cookies.get(session_cookie(request))
    if not token:
        raise errors.Unauthenticated()
    signed_in = sign_ins(request)
    user = signed_in.kept(token) or signed_in.authenticate(token)
    request.state.user = user
    request.state.csrf_token = expected_form_token(request)
    return user


def expected_form_token(request: Request) -> str | None:
    """The form token a state-changing request to this path must carry, if it can have one."""
    secret = workspace_context(request).secret
    if request.url.path == LOGIN_PATH:
        nonce = request.cookies.get(login_cookie(request))
        return forgery.form_token(secret, forgery.LOGIN_PURPOSE, nonce) if nonce else None
    token = request.cookies.get(session_cookie(request))
    return forgery.form_token(secret, forgery.SESSION_PURPOSE, token) if token else None


async def check_forgery(request: Request) -> None:
    """Refuse with 403 a state-changing request from another site or without its form token."""
    if request.method in forgery.SAFE_METHODS:
        return
    sent = (await read_form(request)).get(forgery.FIELD, "")
    host = request.headers.get("host", "")
    forgery.check(request.headers, host, sent, expected_form_token(request))


def require_page(permission: str):  # type: ignore[no-untyped-def]
    """A dependency that shows the 403 page unless the user's role holds ``permission``."""

    def check(user: User = Depends(page_user)) -> User:
        users.authorize(user, permission)
        return user

    return check


async def read_form(request: Request) -> Form:
    """The fields of a urlencoded form; line ends as '\\n', the last of repeated names wins."""
    body = (await request.body()).decode("utf-8", errors="replace")
    pairs = urllib.parse.parse_qsl(body, keep_blank_values=True)
    return {name: value.replace("\r\n", "\n") for name, value in pairs}


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """``template`` rendered for the signed-in user (if any) with ``values``."""
    user: User | None = getattr(request.state, "user", None)
    values.setdefault("errors", {})
    values["user"] = user
    values["is_sandbox_off"] = not request.app.state.settings.is_sandbox_on
    values["workspace_name"] = workspace_context(request).workspace_name
    values["now"] = workspace_context(request).now()
    values["csrf_token"] = getattr(request.state, "csrf_token", "")
    values["can"] = lambda permission: (
        user is not None and user.role in (users.PERMISSIONS[permission])
    )
    return TEMPLATES.TemplateResponse(request, template, values, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    """A 303 See Other to ``url``: after a POST the browser GETs the result."""
    return RedirectResponse(url, status_code=303)


def field_errors(exc: ValidationError) -> FieldErrors:
    """The messages of a Pydantic validation error by field name."""
    found: FieldErrors = {}
    for item in exc.errors():
        where = str(item["loc"][0]) if item.get("loc") else "form"
        found.setdefault(where, item.get("msg", "invalid"))
    return found


def validate(model: type[BaseModel], values: dict[str, Any]) -> tuple[Any, FieldErrors]:
    """The API's own request model built from form ``values``, or the per-field messages."""
    try:
        return model.model_validate(values), {}
    except ValidationError as exc:
        return None, field_errors(exc)


def login_url(request: Request) -> str:
    """The login page, coming back to the requested page afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{LOGIN_PATH}?{urllib.parse.urlencode({'next': target})}"


def error_page(request: Request, exc: errors.TetherError) -> Response:
    """The HTML answer to an error no page handled itself."""
    status = errors.http_status(exc)
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return render(
        request,
        "error.html",
        status_code=status,
        title=titles.get(status, "Something went wrong"),
        message=exc.message,
    )


class PageRoute(APIRoute):
    """A route whose errors answer as pages: 401 goes to the login page, others to an error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                await check_forgery(request)
                return await handler(request)
            except errors.Unauthenticated:
                if request.method == "GET":
                    return redirect(login_url(request))
                return redirect(LOGIN_PATH)
            except errors.TetherError as exc:
                return error_page(request, exc)

        return answer
