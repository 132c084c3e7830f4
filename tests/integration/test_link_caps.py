"""Caps against a hostile but authenticated peer: held long-polls per link, and log entries
per execution (none once it has ended)."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.support.envelopes import HQ_HELLO, LISTENER, Link, create_controlling
from tether.actions import incoming, outgoing
from tether.link import endpoint
from tether.link.envelope import Message
from tether.store import executions, outbox
from tether.store.executions import LogEntry

HOLD_S = 3.0
HELD_POLLS_CAP = 4  # documented in docs/protocol.md


def test_a_peer_could_pile_up_held_long_polls_without_limit(link: Link) -> None:
    """Two more polls than the cap at once: the oldest two are answered at once, not held."""
    count = HELD_POLLS_CAP + 2
    durations: list[float] = []

    def poll(index: int) -> None:
        time.sleep(0.1 * index)  # one after another, so that "oldest" means something
        started = time.monotonic()
        answer = link.post(*link.seal(hello={**HQ_HELLO, "poll_s": HOLD_S}))
        assert answer.status_code == 200, answer.text
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(durations) == count
    quick = [d for d in durations if d < HOLD_S * endpoint.HOLD_JITTER - 1]
    assert len(quick) == 2, sorted(durations)
    assert endpoint.MAX_HELD_POLLS == HELD_POLLS_CAP


# --- log entries per execution --------------------------------------------------------

REMOTE = "ctl"  # this side's sync config controlling the hostile workspace, listening
CONTROLLED_HELLO = {"workspace": "far", "role": "controlled", "protocols": [1], "poll_s": 0}


def remote_child(link: Link, own_key: Any, remote_key: Any) -> str:
    """The id of an execution started here to run over sync config REMOTE."""
    create_controlling(link.api, own_key, remote_key, REMOTE)
    link.api.create_flow("f", "def handler(system, this):\n    pass\n")
    child_id: str = link.api.start("f", remote_workspace_name=REMOTE)["id"]
    return child_id


def send_update(link: Link, seq: int, child: str, status: str, offset: int, count: int) -> None:
    """One execution.update from the hostile side, carrying ``count`` log entries."""
    body: dict[str, Any] = {
        "execution_id": child,
        "remote_id": REMOTE_ID,
        "status": status,
        "output_value": {},
        "message": None,
        "started_at": time.time(),
        "ended_at": time.time() if status.startswith("ENDED_") else None,
        "log_offset": offset,
        "log": [[time.time(), f"line {offset + i}", {}] for i in range(count)],
    }
    message = Message(seq, "execution.update", body)
    sealed = link.seal(message, receiver=REMOTE, hello=CONTROLLED_HELLO)
    answer = link.post(*sealed, name=REMOTE)
    assert answer.status_code == 200, answer.text


REMOTE_ID = "00000000-0000-4000-8000-000000000001"


def log_of(link: Link, execution_id: str) -> list[str]:
    return [e["message"] for e in link.api.ok("GET", f"/execution/{execution_id}/log")]


def test_a_peer_could_send_any_number_of_log_entries_for_one_execution(
    link: Link, own_key: Any, remote_key: Any, monkeypatch: Any
) -> None:
    """Past the cap the log ends with one entry saying it was cut, and grows no more."""
    monkeypatch.setattr(incoming, "MAX_LOG_ENTRIES", 10, raising=False)
    child = remote_child(link, own_key, remote_key)
    send_update(link, 1, child, "RUNNING", 0, 8)
    send_update(link, 2, child, "RUNNING", 8, 8)
    send_update(link, 3, child, "RUNNING", 16, 5)
    lines = log_of(link, child)
    assert lines[:9] == [f"line {i}" for i in range(9)]
    assert lines[9].startswith("[log cut: the linked workspace sent more than 10 entries")
    assert len(lines) == 10


def test_a_peer_could_add_log_entries_after_the_execution_ended(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    child = remote_child(link, own_key, remote_key)
    send_update(link, 1, child, "ENDED_SUCCESS", 0, 2)
    send_update(link, 2, child, "ENDED_SUCCESS", 2, 3)
    assert log_of(link, child) == ["line 0", "line 1"]
    record = link.api.ok("GET", f"/execution/{child}")
    assert (record["status"], record["remote_execution_id"]) == ("ENDED_SUCCESS", REMOTE_ID)


def test_an_ended_execution_sends_its_unsent_log_before_its_end(link: Link) -> None:
    """Updates carrying a long log of an ended execution say RUNNING until the last one."""
    ctx = link.client.app.state.ctx
    assert link.post(*link.seal(link.start_message())).status_code == 200
    received = link.received()[0]["id"]
    link.settle()
    count = 2 * outgoing.MAX_LOG_PER_UPDATE + 3
    with ctx.transaction() as tx:
        ex = executions.get(tx.conn, received)
        entries = [LogEntry(ex.log_count + i, 1.0, "x", {}) for i in range(count)]
        executions.append_log(tx.conn, received, ex.log_count, entries)
        executions.set_columns(tx.conn, received, log_synced=0)
        outbox.acknowledge(tx.conn, LISTENER, 2**62)
        outgoing.after_change(ctx, tx, executions.get(tx.conn, received))
        sent = outbox.pending(tx.conn, LISTENER, 100)
    assert [(m.body["status"], len(m.body["log"])) for m in sent] == [
        ("RUNNING", outgoing.MAX_LOG_PER_UPDATE),
        ("RUNNING", outgoing.MAX_LOG_PER_UPDATE),
        ("ENDED_SUCCESS", count - 2 * outgoing.MAX_LOG_PER_UPDATE + ex.log_count),
    ]
    assert [m.body["ended_at"] is None for m in sent] == [True, True, False]
