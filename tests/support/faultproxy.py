"""Fault-injecting TCP proxy for tests: owns the loopback hop between a dialer and a listener.

It refuses, blackholes, stalls, resets, delays and cuts connections on command; it knows
nothing of the protocol it carries (HTTP between links, PostgreSQL's between a worker and its
database).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

MODES = ("pass", "refuse", "blackhole")
RESET_PHASES = ("before", "request", "response")
CHUNK_BYTES = 65536
IDLE_POLL_S = 0.05
COMMAND_TIMEOUT_S = 5.0


@dataclass(eq=False)
class _Link:
    """One client connection and, once dialled, its upstream twin."""

    client: asyncio.StreamWriter
    task: asyncio.Task[None]
    last_active: float
    upstream: asyncio.StreamWriter | None = None


@dataclass(frozen=True)
class _ResetPlan:
    """Where a doomed connection dies: `fraction` picks how much of the phase's first chunk passes."""

    phase: str
    fraction: float


class FaultProxy:
    """A loopback TCP proxy, run on its own loop thread, whose faults a synchronous test toggles."""

    def __init__(self, upstream_host: str, upstream_port: int, *, seed: int = 0) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._rng = random.Random(seed)
        self._mode = "pass"
        self._mode_changed = asyncio.Event()
        self._reset_p = 0.0
        self._cut_every = 0
        self._chunks_since_cut = 0
        self._delay_s = 0.0
        self._connect_delay_s = 0.0
        self._idle_s: float | None = None
        self._is_stalled = False
        self._stall_changed = asyncio.Event()
        self._links: set[_Link] = set()
        self.connections_total = 0
        self.connections_reset = 0
        self.connections_cut = 0
        self.bytes_passed = 0  # read from either side, both directions together
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None

    # Lifecycle, called from the test's thread.

    def start(self) -> FaultProxy:
        """Bind 127.0.0.1 on a free port and start proxying in a background thread."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="faultproxy", daemon=True
        )
        self._thread.start()
        self._port = self._submit(self._listen())
        return self

    def close(self) -> None:
        """Stop listening, close every connection and join the loop's thread."""
        if self._loop is None or self._thread is None:
            return
        self._submit(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self if self._thread else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The loopback port the proxy listens on."""
        if self._port is None:
            raise RuntimeError("FaultProxy is not started: call start() or use it in a with block")
        return self._port

    @property
    def url_base(self) -> str:
        """The proxy's address as an http URL prefix."""
        return f"http://127.0.0.1:{self.port}"

    # Commands. Plain attribute writes are atomic and the loop reads them afresh, so only the
    # commands that touch loop objects hop onto the loop; each holds once it returns.

    def set_mode(self, mode: str) -> None:
        """Pass, refuse (RST at once) or blackhole (accept, then silence) new connections."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: pick one of {', '.join(MODES)}")
        self._on_loop(self._apply_mode, mode)

    def reset_probability(self, p: float) -> None:
        """Reset each new connection with probability p, before, mid-request or mid-response."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"reset probability {p} is outside [0, 1]")
        self._reset_p = p

    def cut_every(self, n: int) -> None:
        """Reset the connection part-way through every ``n``-th chunk carried (either way,
        counted over all connections; 0: none): a transfer cut mid-way, on a connection
        reused for many requests. A fixed share rather than a probability: a burst carries
        a few hundred chunks, and a 2 % draw from a seeded generator cut none of them."""
        if n < 0:
            raise ValueError(f"cut every {n}-th chunk: n must be 0 (none) or more")
        self._cut_every = n
        self._chunks_since_cut = 0

    def delay(self, seconds: float) -> None:
        """Forward each chunk this long after it arrived, on new and existing connections.

        A delay line, not a throttle: chunks on their way overlap, as on a long cable.
        """
        self._delay_s = seconds

    def round_trip(self, seconds: float) -> None:
        """Make the hop behave like a path of this round-trip time: each chunk takes half of
        it each way, and a new connection's handshake a whole one before its first byte."""
        self._delay_s = seconds / 2
        self._connect_delay_s = seconds

    def idle_timeout(self, seconds: float | None) -> None:
        """Cut any connection with no bytes either way for longer than this; None disables it."""
        self._idle_s = seconds

    def stall(self, is_stalled: bool) -> None:
        """Stop (True) or resume (False) carrying bytes on the connections already open,
        either way: the proxy keeps reading into its own memory, as a black-holed path's
        buffers would take them, and passes nothing on until resumed, when everything held
        arrives in order. With set_mode("blackhole") it cuts a client off entirely, for new
        connections and old; resuming both heals the path without closing what was open."""
        self._on_loop(self._apply_stall, is_stalled)

    def cut_all(self) -> None:
        """Close every current connection now."""
        self._on_loop(self._cut_links)

    def _on_loop(self, fn: Callable[..., None], *args: object) -> None:
        if self._loop is None:
            fn(*args)
        else:
            self._submit(_call(fn, *args))

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(COMMAND_TIMEOUT_S)

    # Everything below runs on the proxy's loop.

    async def _listen(self) -> int:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self._server = server
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        # Every other task on this private loop belongs to a connection.
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _apply_mode(self, mode: str) -> None:
        self._mode = mode
        self._mode_changed.set()
        self._mode_changed = asyncio.Event()

    def _apply_stall(self, is_stalled: bool) -> None:
        self._is_stalled = is_stalled
        self._stall_changed.set()
        self._stall_changed = asyncio.Event()

    def _cut_links(self) -> None:
        links, self._links = self._links, set()
        for link in links:
            link.task.cancel()
        self.connections_cut += len(links)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        task = asyncio.current_task()
        assert task is not None
        link = _Link(writer, task, asyncio.get_running_loop().time())
        plan = self._draw_reset_plan()
        self._links.add(link)
        try:
            await self._serve(link, reader, plan)
        except asyncio.CancelledError:
            # cut_all() or close(): the connection ends here. Python 3.11's stream server
            # would log a cancelled handler as an error in the callback that reaps it.
            pass
        finally:
            self._links.discard(link)
            await _close(link.upstream, link.client)

    def _draw_reset_plan(self) -> _ResetPlan | None:
        """Decide from the seeded generator whether, and where, this connection will be reset."""
        if self._rng.random() >= self._reset_p:
            return None
        return _ResetPlan(self._rng.choice(RESET_PHASES), self._rng.random())

    async def _serve(
        self, link: _Link, reader: asyncio.StreamReader, plan: _ResetPlan | None
    ) -> None:
        if self._mode == "refuse":
            _abort_with_rst(link.client)
            return
        if self._mode == "blackhole":
            await _first_of(self._hold(), self._watch_idle(link))
            return
        if plan is not None and plan.phase == "before":
            self._reset(link)
            return
        if self._connect_delay_s:
            await asyncio.sleep(self._connect_delay_s)
        try:
            up_reader, link.upstream = await asyncio.open_connection(*self._upstream)
        except OSError:
            return
        cut_request = plan.fraction if plan and plan.phase == "request" else None
        cut_response = plan.fraction if plan and plan.phase == "response" else None
        await _first_of(
            self._pump(link, reader, link.upstream, cut_request),
            self._pump(link, up_reader, link.client, cut_response),
            self._watch_idle(link),
        )

    async def _hold(self) -> None:
        """Read nothing and answer nothing until the mode is no longer blackhole."""
        while self._mode == "blackhole":
            await self._mode_changed.wait()

    async def _pump(
        self,
        link: _Link,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        cut_fraction: float | None,
    ) -> None:
        """Copy src to dst until EOF, or reset the client part-way through the first chunk."""
        loop = asyncio.get_running_loop()
        # Chunks wait here until they are due: reading goes on meanwhile, as on a long line.
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def take_in() -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(CHUNK_BYTES):
                    self.bytes_passed += len(data)
                    link.last_active = loop.time()
                    line.put_nowait((loop.time() + self._delay_s, data))
            line.put_nowait((loop.time() + self._delay_s, b""))

        reading = asyncio.create_task(take_in())
        try:
            await self._pass_on(link, line, dst, cut_fraction)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    async def _pass_on(
        self,
        link: _Link,
        line: asyncio.Queue[tuple[float, bytes]],
        dst: asyncio.StreamWriter,
        cut_fraction: float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while True:
                due, data = await line.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                while self._is_stalled:
                    await self._stall_changed.wait()
                if not data:
                    return
                if cut_fraction is None and self._cut_every:
                    self._chunks_since_cut += 1
                    if self._chunks_since_cut >= self._cut_every:
                        self._chunks_since_cut = 0
                        cut_fraction = self._rng.random()
                if cut_fraction is not None:
                    dst.write(data[: _prefix_len(cut_fraction, len(data))])
                    await dst.drain()
                    self._reset(link)
                    return
                dst.write(data)
                await dst.drain()
                link.last_active = loop.time()

    async def _watch_idle(self, link: _Link) -> None:
        """Return, counting a cut, once the link has been idle past the current idle timeout."""
        loop = asyncio.get_running_loop()
        while True:
            limit = self._idle_s
            remaining = IDLE_POLL_S if limit is None else limit - (loop.time() - link.last_active)
            if remaining <= 0:
                self.connections_cut += 1
                return
            await asyncio.sleep(min(remaining, IDLE_POLL_S))

    def _reset(self, link: _Link) -> None:
        self.connections_reset += 1
        _abort_with_rst(link.client)


def _prefix_len(fraction: float, size: int) -> int:
    """Bytes of a size-byte chunk to let through before a reset: at least one, never all."""
    return 0 if size < 2 else 1 + int(fraction * (size - 1))


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Drop the connection so the peer sees a TCP RST rather than an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger on with a zero timeout makes close() discard the send queue and send RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _close(*writers: asyncio.StreamWriter | None) -> None:
    """Close every writer first, so a cancellation while waiting cannot leave one open."""
    opened = [writer for writer in writers if writer is not None]
    for writer in opened:
        writer.close()
    for writer in opened:
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _call(fn: Callable[..., None], *args: object) -> None:
    fn(*args)


async def _first_of(*coros: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines until the first one finishes, then cancel and reap the rest."""
    tasks = [asyncio.ensure_future(coro) for coro in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
