"""What a remote script puts into one message is capped at the source, long logs travel in
chunks, and what still cannot fit ends its execution instead of wedging the link.

Each test ends with a quick remote execution that must complete: before these caps, one
oversized message was refused (413) again and again, the link stayed `failing`, and every
later remote execution stayed QUEUED.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import Pair

MB = 1024 * 1024
# The caps as docs/security.md documents them (tests/unit/test_limits.py holds the code to them).
LOG_ENTRY_CAP = 65536
OUTPUTS_CAP = 1048576
MESSAGE_CAP = 65536
QUICK = """def handler(system, this):
    this.save(output_value={"quick": True})
"""
BIG_LINE = """import os


def handler(system, this, inputs):
    line = "x" * inputs["size"]
    if inputs["how"] == "print":
        print(line)
    elif inputs["how"] == "log":
        this.log(line)
    else:  # a program's output: the child's fd 1, read by the engine
        os.write(1, (line + "\\n").encode())
    print("after the long line")
"""
LONG_LOG = """def handler(system, this, inputs):
    line = "y" * (inputs["line_bytes"] - 10)
    for i in range(inputs["lines"]):
        print(f"{i:09d} {line}")
    print("the end")
"""
BIG_OUTPUT = """def handler(system, this, inputs):
    this.set_output("big", "z" * inputs["size"])
"""
BIG_MESSAGE = """def handler(system, this, inputs):
    this.error("m" * inputs["size"])
"""
BIG_START = """def handler(system, this, inputs):
    this.flow("quick", remote_workspace_name="edge", blob="b" * inputs["size"])
"""


def push(pair: Pair, name: str, script: str) -> None:
    """Create or replace flow ``name`` on the hub (a remote execution takes its script along)."""
    if pair.hub_api.get(f"/flow/{name}").status_code == 200:
        pair.hub_api.ok("PATCH", f"/flow/{name}", json={"script": script})
    else:
        pair.hub_api.create_flow(name, script)


def run_remote(pair: Pair, name: str, **inputs: Any) -> dict[str, Any]:
    """Run flow ``name`` in the edge and return the hub's record once it ended."""
    started = pair.hub_api.start(name, remote_workspace_name="edge", input_value=inputs)
    return pair.hub_api.wait_ended(started["id"], timeout_s=120)


def assert_link_usable(pair: Pair) -> None:
    """The next remote execution completes, and the link is connected on both sides."""
    push(pair, "quick", QUICK)
    child = run_remote(pair, "quick")
    assert child["status"] == "ENDED_SUCCESS", child["message"]
    assert child["output_value"] == {"quick": True}
    assert pair.status("hub")["state"] == "connected", pair.status("hub")
    assert pair.status("edge")["state"] == "connected", pair.status("edge")


def read_log(api: Any, execution_id: str) -> list[dict[str, Any]]:
    """The whole log of an execution, read in pages."""
    entries: list[dict[str, Any]] = []
    while True:
        page = api.ok(
            "GET", f"/execution/{execution_id}/log", params={"offset": len(entries), "limit": 100}
        )
        entries += page
        if len(page) < 100:
            return entries


@pytest.mark.parametrize("how", ["print", "log", "stdout"])
def test_a_remote_5_mb_line_wedged_the_link(pair: Pair, how: str) -> None:
    """The line is cut to one entry of 64 KiB that says what was cut; the log goes on."""
    push(pair, "big_line", BIG_LINE)
    size = 5 * MB
    child = run_remote(pair, "big_line", size=size, how=how)
    assert child["status"] == "ENDED_SUCCESS", child["message"]
    log = [e["message"] for e in read_log(pair.hub_api, child["id"])]
    assert log[-1] == "after the long line"
    (cut,) = log[:-1]
    assert cut.endswith(f"... [cut: {size} bytes, limit {LOG_ENTRY_CAP}]"), cut[-80:]
    assert cut.startswith("x" * 1000)
    assert len(cut.encode()) <= LOG_ENTRY_CAP
    assert_link_usable(pair)


def test_a_remote_50_mb_log_wedged_the_link(pair: Pair) -> None:
    """50 MB of log in lines under the entry cap arrives whole, in envelopes that fit."""
    push(pair, "long_log", LONG_LOG)
    line_bytes, lines = 60_000, 50 * MB // 60_000
    child = run_remote(pair, "long_log", line_bytes=line_bytes, lines=lines)
    assert child["status"] == "ENDED_SUCCESS", child["message"]
    log = [e["message"] for e in read_log(pair.hub_api, child["id"])]
    assert len(log) == lines + 1
    assert log[-1] == "the end"
    assert [entry[:9] for entry in log[:-1]] == [f"{i:09d}" for i in range(lines)]
    assert {len(entry) for entry in log[:-1]} == {line_bytes}
    assert_link_usable(pair)


def test_a_remote_10_mb_output_wedged_the_link(pair: Pair) -> None:
    """Outputs past their cap are refused to the script, which ends ENDED_ERROR saying why."""
    push(pair, "big_output", BIG_OUTPUT)
    child = run_remote(pair, "big_output", size=10 * MB)
    assert child["status"] == "ENDED_ERROR"
    assert "InvalidInputError" in child["message"]
    assert f"at most {OUTPUTS_CAP} bytes" in child["message"]
    assert child["output_value"] == {}
    assert_link_usable(pair)


def test_a_remote_5_mb_end_message_wedged_the_link(pair: Pair) -> None:
    """An execution's message is cut to its cap with a marker, on both sides alike."""
    push(pair, "big_message", BIG_MESSAGE)
    size = 5 * MB
    child = run_remote(pair, "big_message", size=size)
    assert child["status"] == "ENDED_ERROR"
    marker = f"... [cut: {size} bytes, limit {MESSAGE_CAP}]"
    assert child["message"].startswith("mmm") and child["message"].endswith(marker)
    assert len(child["message"].encode()) <= MESSAGE_CAP
    assert_link_usable(pair)


def test_a_remote_start_too_large_for_an_envelope_wedged_the_link(pair: Pair) -> None:
    """A start whose inputs cannot fit one envelope ends ENDED_ERROR at once, saying why."""
    push(pair, "big_start", BIG_START)
    push(pair, "quick", QUICK)
    parent = pair.hub_api.run("big_start", input_value={"size": 5 * MB})
    assert parent["status"] == "ENDED_ERROR"
    (child,) = pair.hub_api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert child["status"] == "ENDED_ERROR"
    assert "does not fit" in child["message"], child["message"]
    assert child["remote_execution_id"] is None  # it never reached the edge
    assert_link_usable(pair)
