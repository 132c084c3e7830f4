"""A flow writing its log faster than the store takes it: the runner holds at most two batches
of it (one being written, the next filling) and reads its channel only a little ahead, the
child waits on its full channel or pipe, and the log arrives complete and in order (issue
19, "Big logs").

The store is slowed down (each write of log entries waits a moment) so that the flow always
runs ahead of it; what the runner holds is read when each write is started: the entries it
is about to write, those of the writes still under way, and what the engine has read from
the channel but not yet parsed. The control
restores the old bounds (a batch of any size, the channel read up to its longest message
ahead) and shows the same run holding several times more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.support.workspace import ApiClient
from tether.actions import executions as execution_actions
from tether.runner import channel, process, runner

MIB = 1024 * 1024
LINE_BYTES = 2000
LINES = 6000  # 12 MB over the channel (print), then as much over fd 1 (os.write)
SLOW_STORE_S = 0.05  # what each write of log entries waits before it writes
# Two of the runner's batches, an entry past each, and what asyncio reads of the channel
# ahead: it stops once past twice the stream's limit, after a read of up to 256 KiB.
BOUND = 2 * (runner.LOG_BATCH_BYTES + LINE_BYTES) + 2 * process.CHANNEL_READ_BYTES + 256 * 1024
FLOOD = """import os


def handler(system, this, inputs):
    body = "w" * (inputs["line_bytes"] - 11)
    for n in range(inputs["lines"]):
        print(f"{n:010d} {body}")
    for n in range(inputs["lines"], 2 * inputs["lines"]):
        os.write(1, f"{n:010d} {body}\\n".encode())
"""


def log_of(api: ApiClient, execution_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while page := api.ok(
        "GET", f"/execution/{execution_id}/log", params={"offset": len(entries), "limit": 10_000}
    ):
        entries += page
    return entries


def flood(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run FLOOD against a slow store; the bytes the runner held at each write, checking
    that the whole log arrived in order."""
    held: list[int] = []
    writing: dict[object, int] = {}  # the entries' bytes of each write under way
    write_held = runner.Runner._write_held
    write_log = runner.Runner._write_log
    append = execution_actions.append_log

    def measured_write_held(self: runner.Runner, running: runner.Running) -> Any:
        reader: Any = running.process._reader  # what asyncio read ahead
        held.append(running.held_bytes + sum(writing.values()) + len(reader._buffer))
        return write_held(self, running)

    async def measured_write_log(
        self: runner.Runner, running: runner.Running, lines: list[Any], *, after: Any
    ) -> None:
        key = object()
        writing[key] = sum(len(text.encode()) for _, text, _ in lines)
        try:
            await write_log(self, running, lines, after=after)
        finally:
            del writing[key]

    def slow_append(ctx: Any, execution_id: str, lines: Sequence[Any]) -> None:
        time.sleep(SLOW_STORE_S)
        append(ctx, execution_id, lines)

    monkeypatch.setattr(runner.Runner, "_write_held", measured_write_held)
    monkeypatch.setattr(runner.Runner, "_write_log", measured_write_log)
    monkeypatch.setattr(execution_actions, "append_log", slow_append)
    api.create_flow("flood", FLOOD)
    started = api.start("flood", input_value={"line_bytes": LINE_BYTES, "lines": LINES})
    ended = api.wait_ended(started["id"], timeout_s=60)
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    log = [e["message"] for e in log_of(api, ended["id"])]
    assert len(log) == 2 * LINES
    numbers = [int(line[:10]) for line in log]
    # Each stream in order; the two streams have no order between them (the channel's last
    # lines may still be on their way when the pipe's first ones are read).
    assert [n for n in numbers if n < LINES] == list(range(LINES))
    assert [n for n in numbers if n >= LINES] == list(range(LINES, 2 * LINES))
    assert all(len(line) == LINE_BYTES for line in log)
    return held


def test_a_fast_writer_made_the_server_hold_its_whole_log(
    api_with: Callable[..., ApiClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    held = flood(api_with(), monkeypatch)
    assert max(held) <= BOUND, f"held {max(held)} bytes at most {BOUND}"


def test_control_the_old_bounds_held_far_more(
    api_with: Callable[..., ApiClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "LOG_BATCH", 10**9)
    monkeypatch.setattr(runner, "LOG_BATCH_BYTES", 10**12)
    monkeypatch.setattr(process, "CHANNEL_READ_BYTES", channel.MAX_LINE_BYTES)
    held = flood(api_with(), monkeypatch)
    assert max(held) > 3 * BOUND, f"held {max(held)} bytes at most"
