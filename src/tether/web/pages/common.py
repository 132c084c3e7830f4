"""What every HTML page shares: the session cookie, the page route that turns errors into pages,
form reading, and template rendering. Pages call use cases; they never speak SQL.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from tether import errors
from tether.actions import users
from tether.store.users import User
from tether.web.auth import workspace_context

SESSION_COOKIE = "tether_session"
COOKIE_PATH = "/ui"
LOGIN_PATH = "/ui/login"
HOME_PATH = "/ui/flows"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

Form = dict[str, str]
FieldErrors = dict[str, str]


def when(timestamp: float | None) -> str:
    """A Unix time as 'YYYY-MM-DD HH:MM:SS' in UTC, or an empty string."""
    if timestamp is None:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def pretty(value: Any) -> str:
    """``value`` as indented JSON for display."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def build_templates() -> Jinja2Templates:
    """The page templates with tether's filters."""
    templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
    templates.env.filters["when"] = when
    templates.env.filters["pretty"] = pretty
    return templates


# A compiled template cache, like a compiled regular expression: immutable after import.
TEMPLATES = build_templates()


def page_user(request: Request) -> User:
    """The user whose session cookie the request carries."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise errors.Unauthenticated()
    user = users.authenticate(workspace_context(request), token)
    request.state.user = user
    return user


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
                return await handler(request)
            except errors.Unauthenticated:
                if request.method == "GET":
                    return redirect(login_url(request))
                return redirect(LOGIN_PATH)
            except errors.TetherError as exc:
                return error_page(request, exc)

        return answer
