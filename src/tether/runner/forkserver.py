"""The engine's handle on the fork server: ask for a child, learn how children exited.

Knows nothing of executions; it hands out processes and their channels.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any

from tether import errors

FORK_TIMEOUT_S = 30.0  # a fork answers in milliseconds; this only guards against a hang


@dataclass(frozen=True)
class Exit:
    code: int | None
    signal: int | None


@dataclass(frozen=True)
class Forked:
    """A new child: its pid, the engine's end of its channel, and its stdout and stderr."""

    pid: int
    channel: socket.socket
    stdout: int
    stderr: int


class ForkServer:
    """One fork server process and the bookkeeping of the children it forked.

    ``policy``: the sandbox its children enter (runner/sandbox.py), None for none.
    """

    def __init__(self, policy: dict[str, Any] | None = None) -> None:
        self._policy = policy
        self.readiness: dict[str, Any] = {}  # what the fork server said once prepared
        self._process: asyncio.subprocess.Process | None = None
        self._ctrl: socket.socket | None = None
        self._forks: deque[asyncio.Future[int]] = deque()
        self._exits: dict[int, asyncio.Future[Exit | None]] = {}  # None: the server died
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the fork server and wait until it has prepared the sandbox."""
        # Sequenced packets: each request arrives whole, with its own three descriptors.
        engine_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        is_confined = self._policy is not None
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            # Isolated: no working directory on sys.path, no PYTHON* variables.
            *(["-I"] if is_confined else []),
            "-m",
            "tether.runner.zygote",
            str(zygote_end.fileno()),
            pass_fds=[zygote_end.fileno()],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            # The server's environment (its password, its database URL) never reaches the
            # fork server, whose memory every child starts from.
            env=self._policy["env"] if self._policy is not None else None,
        )
        zygote_end.close()
        self._ctrl = engine_end
        engine_end.sendall(json.dumps(self._policy).encode())
        self.readiness = await self._await_ready()
        self._reader = asyncio.create_task(self._read_reports())

    async def _await_ready(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        async with asyncio.timeout(FORK_TIMEOUT_S):
            line = await self._process.stdout.readline()
        report: dict[str, Any] = (
            json.loads(line) if line else {"failed": "it exited before it was ready"}
        )
        if "ready" not in report:
            await self.stop()
            raise errors.SandboxUnavailable(
                detail=f"the fork server could not prepare the sandbox: {report['failed']}"
            )
        return dict(report["ready"])

    @property
    def is_running(self) -> bool:
        """Whether the fork server process is there to fork children."""
        return (
            self._ctrl is not None
            and self._process is not None
            and self._process.returncode is None
            and self._reader is not None
            and not self._reader.done()
        )

    async def restart(self) -> None:
        """Replace a fork server that died (its children died with it)."""
        await self.stop()
        self._forks.clear()
        self._exits.clear()
        await self.start()

    async def fork(self) -> Forked:
        """A new child process, its channel and its standard streams."""
        # Checked without an await before the append: once the report reader has ended,
        # nothing would ever answer this fork.
        if self._ctrl is None or not self.is_running:
            raise RuntimeError("the fork server is not running")
        engine_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._forks.append(future)
        try:
            socket.send_fds(self._ctrl, [b"f"], [child_end.fileno(), stdout_write, stderr_write])
        except OSError:
            self._forks.remove(future)  # no report will come for it
            _close_all(engine_end, stdout_read, stderr_read)
            raise
        finally:
            _close_all(child_end, stdout_write, stderr_write)
        try:
            async with asyncio.timeout(FORK_TIMEOUT_S):
                pid = await future
        except BaseException:
            _close_all(engine_end, stdout_read, stderr_read)
            raise
        self._exits.setdefault(pid, asyncio.get_running_loop().create_future())
        return Forked(pid, engine_end, stdout_read, stderr_read)

    async def exit_of(self, pid: int, timeout_s: float) -> Exit | None:
        """How child ``pid`` exited, waiting up to ``timeout_s``; None if it has not."""
        future = self._exits.setdefault(pid, asyncio.get_running_loop().create_future())
        if not future.done() and (self._reader is None or self._reader.done()):
            return None  # the fork server is gone: no report will come
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(future)
        except TimeoutError:
            return None

    def forget(self, pid: int) -> None:
        self._exits.pop(pid, None)

    async def _read_reports(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while line := await self._process.stdout.readline():
            report = json.loads(line)
            if "forked" in report:
                fork = self._forks.popleft()
                if not fork.done():  # done: its caller gave up waiting
                    fork.set_result(report["forked"])
            else:
                exit_ = Exit(report.get("code"), report.get("signal"))
                future = self._exits.setdefault(
                    report["exited"], asyncio.get_running_loop().create_future()
                )
                if not future.done():
                    future.set_result(exit_)
        for fork in self._forks:
            if not fork.done():
                fork.set_exception(RuntimeError("the fork server exited"))
        for waiting in self._exits.values():
            if not waiting.done():
                waiting.set_result(None)  # its children died with it, unreported

    async def stop(self) -> None:
        if self._ctrl is not None:
            self._ctrl.close()
            self._ctrl = None
        if self._process is not None and self._process.returncode is None:
            try:
                async with asyncio.timeout(2):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._reader is not None:
            await self._reader
        scratch_root = self.readiness.get("scratch_root")
        if scratch_root:  # the fork server removes it; not when it was killed outright
            shutil.rmtree(scratch_root, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None


def _close_all(*items: socket.socket | int) -> None:
    for item in items:
        if isinstance(item, int):
            os.close(item)
        else:
            item.close()
