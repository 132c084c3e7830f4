"""One child process running one script: spawn, channel, cancel signal, kill, exit status.

Knows nothing of SQL or HTTP; the runner tells it what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tether import limits
from tether.runner import channel
from tether.runner.forkserver import Exit, Forked, ForkServer

OUTPUT_READ_BYTES = 64 * 1024
# What the engine reads ahead of the runner from a child's channel: asyncio buffers up to
# twice a stream's limit before it stops reading, so the limit is this, not the longest
# message (channel.MAX_LINE_BYTES, assembled piece by piece in receive()). A child writing
# faster than its log is stored then blocks on a full socket instead of the server buffering.
CHANNEL_READ_BYTES = 256 * 1024


class ChildProcess:
    """A forked child, the engine's end of its channel, and what its programs write."""

    def __init__(
        self,
        server: ForkServer,
        forked: Forked,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._server = server
        self.pid = forked.pid
        self._reader = reader
        self._writer = writer
        self._outputs = {"stdout": forked.stdout, "stderr": forked.stderr}

    @classmethod
    async def spawn(cls, server: ForkServer) -> ChildProcess:
        forked = await server.fork()
        try:
            reader, writer = await asyncio.open_unix_connection(
                sock=forked.channel, limit=CHANNEL_READ_BYTES
            )
        except BaseException:
            for fd in (forked.stdout, forked.stderr):
                os.close(fd)
            raise
        return cls(server, forked, reader, writer)

    async def read_output(self, on_line: Callable[[str, str], Awaitable[None]]) -> None:
        """Pass each line written to the child's fds 1 and 2 to ``on_line(stream, text)``
        until both are closed (by the child and every program it started); while it is
        awaited that stream is not read (its programs block on a full pipe)."""
        outputs, self._outputs = self._outputs, {}
        await asyncio.gather(*(_read_lines(fd, name, on_line) for name, fd in outputs.items()))

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message; a child that already exited is not an error here."""
        with contextlib.suppress(ConnectionError):
            self._writer.write(channel.encode(message))
            await self._writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next message from the child, or None when its end closed."""
        try:
            line = await _read_line(self._reader, channel.MAX_LINE_BYTES)
        except ConnectionError:
            return None
        if not line:
            return None
        try:
            return cast("dict[str, Any] | None", json.loads(line))
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
        for fd in self._outputs.values():  # never read: the execution did not start
            os.close(fd)
        self._outputs = {}
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        self._server.forget(self.pid)


async def _read_line(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """The next line (with its newline; empty at the end), read in pieces of at most the
    reader's limit; None for a line longer than ``max_bytes``."""
    pieces: list[bytes] = []
    size = 0
    while True:
        try:
            piece = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the end, maybe after a last partial line
            piece = exc.partial
        except asyncio.LimitOverrunError as exc:  # no newline within the limit: take a piece
            piece = await reader.readexactly(exc.consumed)
            size += len(piece)
            if size > max_bytes:
                return None
            pieces.append(piece)
            continue
        size += len(piece)
        if size > max_bytes:
            return None
        pieces.append(piece)
        return b"".join(pieces)


async def _read_lines(fd: int, stream: str, on_line: Callable[[str, str], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=OUTPUT_READ_BYTES)
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    lines = OutputLines(limits.MAX_LOG_ENTRY_BYTES)
    try:
        while chunk := await reader.read(OUTPUT_READ_BYTES):
            for line in lines.feed(chunk):
                await on_line(stream, line)
        last = lines.end()
        if last is not None:
            await on_line(stream, last)
    finally:
        transport.close()


class OutputLines:
    """Splits what a program writes into lines; of a line over ``limit`` bytes it keeps the
    head and counts the rest, so that the line becomes one entry that says what was cut."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._head = bytearray()
        self._size = 0  # bytes of the current line so far, kept or not

    def feed(self, chunk: bytes) -> list[str]:
        """The lines that ``chunk`` completes."""
        done: list[str] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._add(chunk[start:end])
            done.append(self._take())
            start = end + 1
        self._add(chunk[start:])
        return done

    def end(self) -> str | None:
        """The last line, when the output did not end with a newline."""
        return self._take() if self._size else None

    def _add(self, piece: bytes) -> None:
        room = self._limit - len(self._head)
        if room > 0:
            self._head += piece[:room]
        self._size += len(piece)

    def _take(self) -> str:
        text = self._head.decode("utf-8", "replace")
        size, self._head, self._size = self._size, bytearray(), 0
        return limits.cut_text(text, self._limit, size)


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
