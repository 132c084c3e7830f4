"""The pipe between the engine and one child process: one JSON message per line.

Used blocking on the child's side; the engine reads the same format with asyncio streams.
"""

from __future__ import annotations

import json
import socket
from typing import Any

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
        self._sock.sendall(encode(message))

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the engine closed the channel."""
        line = self._reader.readline(MAX_LINE_BYTES)
        if not line:
            return None
        return json.loads(line)
