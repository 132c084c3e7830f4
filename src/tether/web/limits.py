"""Refuses request bodies larger than the configured limit before they are read whole."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether import errors


class BodyLimit:
    """ASGI middleware answering 413 for bodies over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        is_exceeded = False
        is_refused = False

        async def limited_receive() -> Message:
            nonlocal seen, is_exceeded
            if is_exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Reading stops here; whatever the app answers is replaced by the 413.
                    is_exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal is_refused
            if not is_exceeded:
                await send(message)
            elif message["type"] == "http.response.start" and not is_refused:
                is_refused = True
                await self._refuse(send)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # An app that reads the whole body fails on the disconnect it was handed (a
            # chunked body has no Content-Length to refuse up front): the answer is the 413.
            if not is_exceeded:
                raise
            if not is_refused:
                is_refused = True
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        error = errors.PayloadTooLarge(limit=self.max_bytes)
        body = json.dumps({"error": error.kind, "message": error.message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
