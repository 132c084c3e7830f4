"""Security headers on every answer: what a browser may load, frame, sniff, refer and cache."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The pages load only their own stylesheet and script, and no page may be framed.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages run inline scripts from a CDN; they hold no session.
DOCS_POLICY = "frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")
STATIC_PREFIX = "/ui/static/"


def headers_for(path: str) -> dict[str, str]:
    """The security headers of an answer to ``path``."""
    is_docs = path.startswith(DOCS_PATHS)
    found = {
        "Content-Security-Policy": DOCS_POLICY if is_docs else PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    if not path.startswith(STATIC_PREFIX):
        # Pages and API answers show what one user may see: no cache keeps them.
        found["Cache-Control"] = "no-store"
    return found


class SecurityHeaders:
    """ASGI middleware adding ``headers_for`` to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
