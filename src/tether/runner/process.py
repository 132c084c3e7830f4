"""One child process running one script: spawn, channel, cancel signal, kill, exit status.

Knows nothing of SQL or HTTP; the runner tells it what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from tether.runner import channel
from tether.runner.forkserver import Exit, ForkServer


class ChildProcess:
    """A forked child and the engine's end of its channel."""

    def __init__(
        self,
        server: ForkServer,
        pid: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._server = server
        self.pid = pid
        self._reader = reader
        self._writer = writer

    @classmethod
    async def spawn(cls, server: ForkServer) -> ChildProcess:
        pid, sock = await server.fork()
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=channel.MAX_LINE_BYTES)
        return cls(server, pid, reader, writer)

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message; a child that already exited is not an error here."""
        with contextlib.suppress(ConnectionError):
            self._writer.write(channel.encode(message))
            await self._writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next message from the child, or None when its end closed."""
        try:
            line = await self._reader.readline()
        except (ConnectionError, ValueError):
            return None
        if not line:
            return None
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return None

    def signal_cancel(self) -> None:
        """Raise the cancel signal inside the script."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGUSR1)

    def kill(self) -> None:
        """Kill the child and everything it started (its process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    async def exit_status(self, timeout_s: float) -> Exit | None:
        return await self._server.exit_of(self.pid, timeout_s)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        self._server.forget(self.pid)


def describe_exit(exit_: Exit | None) -> str:
    """Words for how a process ended without ending its execution."""
    if exit_ is None:
        return "the execution's process stopped answering and was killed"
    if exit_.signal is not None:
        try:
            name = signal.Signals(exit_.signal).name
        except ValueError:
            name = f"signal {exit_.signal}"
        return f"the execution's process was killed by {name} (signal {exit_.signal}) before the execution ended"
    return f"the execution's process exited with code {exit_.code} before the execution ended"
