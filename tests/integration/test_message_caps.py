"""What one script can put into one message, and into its whole log, on SQLite and PostgreSQL:
cut at the source with a marker, sent in chunks that fit an envelope, and what cannot fit
ends its execution instead of waiting in the outbox for good."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.integration import test_link_caps
from tests.support.envelopes import LISTENER, Link, create_controlling
from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient
from tether import limits
from tether.actions import outgoing
from tether.link import envelope, exchange
from tether.link.envelope import Message
from tether.messages import dump
from tether.store import executions, outbox

MIB = 1024 * 1024
FLOOD = """import os


def handler(system, this, inputs):
    line = "f" * (inputs["line_bytes"] - 1)
    for i in range(inputs["lines"]):
        if i % 2:
            print(line)
        else:  # a program's output, read by the engine from fd 1
            os.write(1, (line + "\\n").encode())
    print("still running")
"""
OUTPUTS = """import flow_api


def handler(system, this, inputs):
    try:
        this.set_output("big", "o" * inputs["size"])
    except flow_api.InvalidInputError as exc:
        this.set_output("refused", str(exc))
    this.set_output("small", 1)
"""
REMOTE_START = """def handler(system, this, inputs):
    this.flow("f", remote_workspace_name="ctl", blob="b" * inputs["size"])
"""


def log_of(api: ApiClient, execution_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while page := api.ok(
        "GET", f"/execution/{execution_id}/log", params={"offset": len(entries), "limit": 1000}
    ):
        entries += page
    return entries


def test_one_execution_could_write_an_unlimited_log(
    api_with: Callable[..., ApiClient],
) -> None:
    """Past --execution-log-mb the log ends with one marker and keeps nothing more."""
    api = api_with(execution_log_mb=1)
    api.create_flow("flood", FLOOD)
    ended = api.run("flood", input_value={"line_bytes": 10_000, "lines": 300})  # 3 MB
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    log = [e["message"] for e in log_of(api, ended["id"])]
    marker = "[log cut: this execution wrote more than 1 MiB of log; the rest was dropped"
    assert log[-1].startswith(marker), log[-1]
    assert sum(1 for line in log if line.startswith("[log cut")) == 1
    kept = log[:-1]
    assert sum(len(line) for line in kept) <= MIB
    assert len(kept) == MIB // 10_000  # every entry that fit was kept, in order
    assert "still running" not in log


def test_a_script_could_save_outputs_too_large_for_any_envelope(api: ApiClient) -> None:
    """A save past the outputs cap is refused to the script, which can go on."""
    api.create_flow("outputs", OUTPUTS)
    ended = api.run("outputs", input_value={"size": 2 * MIB})
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    outputs = ended["output_value"]
    assert set(outputs) == {"refused", "small"}
    assert f"at most {limits.MAX_OUTPUTS_BYTES} bytes" in outputs["refused"]
    assert "system.file" in outputs["refused"]


def test_a_long_log_went_into_updates_of_any_size(link: Link) -> None:
    """A received execution's long log goes back in updates that each fit an envelope."""
    ctx = link.client.app.state.ctx
    assert link.post(*link.seal(link.start_message())).status_code == 200
    received = link.received()[0]["id"]
    link.settle()
    line = "L" * 60_000
    count = 100  # 6 MB: more than one update carries by bytes, far fewer than by count
    with ctx.transaction() as tx:
        ex = executions.get(tx.conn, received)
        entries = [executions.LogEntry(ex.log_count + i, 1.0, line, {}) for i in range(count)]
        executions.append_log(tx.conn, received, ex.log_count, entries)
        executions.set_columns(tx.conn, received, log_synced=0)
        outbox.acknowledge(tx.conn, LISTENER, 2**62)
        outgoing.after_change(ctx, tx, executions.get(tx.conn, received))
        sent = outbox.pending(tx.conn, LISTENER, 100)
    assert len(sent) > 1
    for message in sent:
        assert limits.json_bytes(message.body["log"]) <= outgoing.MAX_LOG_BYTES_PER_UPDATE
        assert limits.json_bytes(message.body) <= outgoing.MAX_BODY_BYTES < envelope.MAX_BODY_BYTES
    carried = [entry[1] for message in sent for entry in message.body["log"]]
    assert carried[-count:] == [line] * count
    assert [m.body["status"] for m in sent][-1] == "ENDED_SUCCESS"
    assert {m.body["status"] for m in sent[:-1]} == {"RUNNING"}


def test_an_update_too_large_for_an_envelope_stayed_in_the_outbox(link: Link) -> None:
    """An update that cannot fit (outputs stored by an earlier version) ends the execution
    ENDED_ERROR here and, by a small update, there."""
    ctx = link.client.app.state.ctx
    assert link.post(*link.seal(link.start_message())).status_code == 200
    received = link.received()[0]["id"]
    link.settle()
    huge = {"big": "h" * (4 * MIB)}
    with ctx.transaction() as tx:
        executions.set_columns(tx.conn, received, status="RUNNING", ended_at=None)
        executions.set_columns(tx.conn, received, output_value=huge)
        outbox.acknowledge(tx.conn, LISTENER, 2**62)
        outgoing.after_change(ctx, tx, executions.get(tx.conn, received))
        (sent,) = outbox.pending(tx.conn, LISTENER, 100)
    record = link.api.ok("GET", f"/execution/{received}")
    assert record["status"] == "ENDED_ERROR"
    assert "more than one message of the link carries" in record["message"]
    assert sent.body["status"] == "ENDED_ERROR"
    assert sent.body["message"] == record["message"]
    assert sent.body["output_value"] == {}
    assert len(json.dumps(sent.body)) < 100_000


def test_a_remote_start_too_large_for_an_envelope_stayed_in_the_outbox(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """A start whose inputs cannot fit one envelope is never queued; its execution ends."""
    create_controlling(link.api, own_key, remote_key, "ctl")
    link.api.create_flow("f", "def handler(system, this):\n    pass\n")
    link.api.create_flow("starter", REMOTE_START)
    parent = link.api.run("starter", input_value={"size": 4 * MIB})
    assert parent["status"] == "ENDED_ERROR"
    assert "DependencyFailedError" in parent["message"]
    (child,) = link.api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert child["status"] == "ENDED_ERROR"
    assert "does not fit one message of the link" in child["message"]
    assert "pass less data" in child["message"]
    ctx = link.client.app.state.ctx
    with ctx.db.read() as conn:
        assert outbox.pending(conn, "ctl", 100) == []
    # A start that fits still goes (the other side never answers here: cancel it after).
    parent = link.api.start("starter", input_value={"size": 10})
    child = wait_child(link.api, parent["id"])
    with ctx.db.read() as conn:
        (start,) = outbox.pending(conn, "ctl", 100)
    assert (start.type, start.body["execution_id"]) == (outgoing.START, child["id"])
    link.api.ok("POST", f"/execution/{parent['id']}/cancel")


def wait_child(api: ApiClient, parent_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The one child of ``parent_id`` once it exists."""

    def children() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = api.ok("GET", "/execution", params={"parent_id": parent_id})
        return found

    (child,) = wait_until(children, f"execution {parent_id} to start a child", timeout_s)
    return child


def test_an_oversized_update_left_by_an_earlier_version_wedged_the_link(link: Link) -> None:
    """Found in the outbox when a batch is made, it gives way to a small update that ends the
    execution on both sides, under its own sequence number; the messages behind it follow."""
    ctx = link.client.app.state.ctx
    assert link.post(*link.seal(link.start_message())).status_code == 200
    received = link.received()[0]["id"]
    link.settle()
    with ctx.transaction() as tx:
        executions.set_columns(tx.conn, received, status="RUNNING", ended_at=None)
        outbox.acknowledge(tx.conn, LISTENER, 2**62)
        ex = executions.get(tx.conn, received)
        body: dict[str, Any] = {
            "execution_id": ex.remote_execution_id,
            "remote_id": ex.id,
            "status": "RUNNING",
            "output_value": {"big": "u" * (5 * MIB)},
            "message": None,
            "started_at": ex.started_at,
            "ended_at": None,
            "log_offset": 0,
            "log": [],
        }
        stuck = outbox.append(tx.conn, LISTENER, outgoing.UPDATE, dump(body), ctx.now())
        behind = outbox.append(tx.conn, LISTENER, outgoing.CANCEL, dump({"execution_id": "x"}), 1.0)
    _, batch = exchange.pending_batch(ctx, LISTENER)
    assert [m.seq for m in batch][:2] == [stuck, behind]
    assert batch[0].body["status"] == "ENDED_ERROR"
    assert batch[0].body["output_value"] == {}
    assert limits.json_bytes(batch[0].body) < 100_000
    record = link.api.ok("GET", f"/execution/{received}")
    assert record["status"] == "ENDED_ERROR"
    assert batch[0].body["message"] == record["message"]
    assert "more than one message of the link carries" in record["message"]


def test_a_peer_could_store_log_entries_of_any_size_here(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """A log entry from the other side is cut to the entry cap, as this side cuts its own."""
    child = test_link_caps.remote_child(link, own_key, remote_key)
    body: dict[str, Any] = {
        "execution_id": child,
        "remote_id": test_link_caps.REMOTE_ID,
        "status": "ENDED_SUCCESS",
        "output_value": {},
        "message": None,
        "started_at": time.time(),
        "ended_at": time.time(),
        "log_offset": 0,
        "log": [[time.time(), "p" * 200_000, {}], [time.time(), "small", {}]],
    }
    sealed = link.seal(
        Message(1, outgoing.UPDATE, body),
        receiver=test_link_caps.REMOTE,
        hello=test_link_caps.CONTROLLED_HELLO,
    )
    assert link.post(*sealed, name=test_link_caps.REMOTE).status_code == 200
    first, second = test_link_caps.log_of(link, child)
    assert first.endswith(f"... [cut: 200000 bytes, limit {limits.MAX_LOG_ENTRY_BYTES}]")
    assert len(first) <= limits.MAX_LOG_ENTRY_BYTES
    assert second == "small"
