"""The pipe between the engine and one child process: one JSON message per line.

Used blocking on the child's side; the engine reads the same format with asyncio streams.
"""

from __future__ import annotations

import json
import socket
from typing import Any, cast

MAX_LINE_BYTES = 64 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line of compact JSON."""
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


class Channel:
    """Blocking message exchange over a connected socket (the child's end)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")

    def send(self, message: dict[str, Any]) -> None:
        """Send one message; raises ValueError for one longer than the engine reads."""
        line = encode(message)
        if len(line) > MAX_LINE_BYTES:
            # Sent, it would end the engine's reading of this channel, and the execution.
            raise ValueError(
                f"this request is {len(line)} bytes; a request to the engine carries at most "
                f"{MAX_LINE_BYTES} bytes: send less at once"
            )
        self._sock.sendall(line)

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the engine closed the channel."""
        line = self._reader.readline(MAX_LINE_BYTES)
        if not line:
            return None
        return cast("dict[str, Any] | None", json.loads(line))
