"""The link endpoint, served ahead of FastAPI's router: POST /api/latest/sync_config/{name}/sync.

Every request of every link arrives here, each held long-poll and its renewal included.
Measured in-process with FastAPI 0.165, its router alone costs 0.15-0.5 ms a request (it
tries every route of every included router in turn), several times what verifying an
envelope costs (0.05 ms). The route in ``routes.sync_configs`` stays for the OpenAPI
description and answers through ``sync_response`` too, so both say the same.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tether import errors
from tether.link import compression
from tether.link.endpoint import Listener
from tether.web.errors import internal_error_response, tether_error_response

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Bodies up to this size are (de)compressed on the event loop; larger ones in a worker
# thread (a 1 MB update takes a few milliseconds, which would stall every other request).
INLINE_CODING_BYTES = 64 * 1024
# Every answer says which compressed request bodies this side takes (RFC 7694): a dialer
# compresses only after hearing it, so a listener of an earlier version is never sent one.
ANNOUNCE = {"Accept-Encoding": compression.ANNOUNCED}


async def sync_response(
    listener: Listener, name: str, body: bytes, headers: Mapping[str, str], max_body_bytes: int
) -> Response:
    """The answer to one request on the link endpoint: the signed envelope, or the error.

    ``body`` is as it came: its Content-Encoding is undone up to ``max_body_bytes``, and
    the answer is compressed in the coding the request accepts (zstd before gzip).
    """
    try:
        body = await _off_loop_if_large(
            len(body), compression.decode, body, headers.get("content-encoding"), max_body_bytes
        )
    except errors.TetherError as exc:  # too large once decompressed (413), or broken (400)
        log.warning("sync request body refused: %s", exc.message)
        return tether_error_response(exc)
    try:
        sealed = await listener.handle(name, body, dict(headers))
    except (errors.EnvelopeRejected, errors.InvalidInput) as exc:
        # Unknown, disabled and badly signed get the same answer; the reason goes to the log.
        reason = exc.reason if isinstance(exc, errors.EnvelopeRejected) else exc.message
        log.warning("sync envelope rejected: %s", reason)
        return tether_error_response(errors.EnvelopeRejected(reason))
    except errors.TetherError as exc:  # the sync config was deleted during a held poll
        return tether_error_response(exc)
    answer_headers = {**sealed.headers, **ANNOUNCE}
    content = sealed.body
    coding = compression.chosen(headers.get("accept-encoding"))
    if coding is not None and len(content) >= compression.MIN_BYTES:
        content = await _off_loop_if_large(len(content), compression.compress, content, coding)
        answer_headers["Content-Encoding"] = coding
    return Response(content=content, headers=answer_headers, media_type="application/json")


async def _off_loop_if_large(size: int, fn: Callable[..., _T], *args: Any) -> _T:
    if size <= INLINE_CODING_BYTES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


class LinkLane:
    """ASGI middleware that answers the link endpoint itself and passes on everything else.

    Sits inside the body limit, which still answers 413 for an oversized envelope.
    """

    def __init__(
        self, app: ASGIApp, listener: Listener, api_prefix: str, max_body_bytes: int
    ) -> None:
        self.app = app
        self._listener = listener
        self._max_body_bytes = max_body_bytes  # also the cap of a decompressed body
        self._path = re.compile(re.escape(api_prefix) + r"/sync_config/([^/]+)/sync")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = self._path.fullmatch(_route_path(scope))
            if match is not None:
                response = await self._answer(match.group(1), scope, receive)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, name: str, scope: Scope, receive: Receive) -> Response:
        request = Request(scope, receive)
        try:
            body = await request.body()
            return await sync_response(
                self._listener, name, body, request.headers, self._max_body_bytes
            )
        except ClientDisconnect:
            # The body never arrived whole (or went over the limit, which then answers 413).
            log.info("a client left before its envelope ended")
            return tether_error_response(
                errors.InvalidInput(detail="the request body ended early: send it whole")
            )
        except Exception:
            log.exception("the link endpoint failed")
            return internal_error_response()


def _route_path(scope: Scope) -> str:
    """The request's path below the app's mount point (behind a proxy that sets root_path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
