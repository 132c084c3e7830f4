"""Executions are never stranded: a remote execution whose start never reached the other
side can be cancelled, also once its sync config is gone, and deleting a sync config ends
its unfinished executions ENDED_ERROR, saying why."""

from __future__ import annotations

import time
from typing import Any

from tests.support.envelopes import (
    LISTENER,
    WAITING_SCRIPT,
    Link,
    create_controlling,
)
from tether.link import envelope
from tether.link.envelope import Message
from tether.store import sync_configs

REMOTE = "ctl"  # this side controls the other workspace over it; nobody polls it here
CONTROLLED_HELLO = {"workspace": "far", "role": "controlled", "protocols": [1], "poll_s": 0}


def remote_child(link: Link, own_key: Any, remote_key: Any) -> str:
    create_controlling(link.api, own_key, remote_key, REMOTE)
    link.api.create_flow("f", "def handler(system, this):\n    this.save(message='ran')\n")
    child_id: str = link.api.start("f", remote_workspace_name=REMOTE)["id"]
    return child_id


def collect(link: Link) -> tuple[Message, ...]:
    """What sync config REMOTE delivers to the controlled side when it finally polls."""
    sealed = link.seal(receiver=REMOTE, hello=CONTROLLED_HELLO)
    answer = link.post(*sealed, name=REMOTE)
    assert answer.status_code == 200, answer.text
    return envelope.decode(answer.content).messages


def test_a_remote_execution_whose_start_never_left_could_not_be_cancelled(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """It ends ENDED_CANCELLED at once; delivered later, its start does not run over there
    (here: relayed to this workspace's own controlled sync config 'edge')."""
    child = remote_child(link, own_key, remote_key)
    cancelled = link.api.ok("POST", f"/execution/{child}/cancel")
    assert cancelled["status"] == "ENDED_CANCELLED"
    assert link.api.ok("GET", f"/execution/{child}")["status"] == "ENDED_CANCELLED"

    delivered = collect(link)
    assert [m.seq for m in delivered] == [1, 2]
    assert "execution.start" not in [m.type for m in delivered]
    assert link.post(*link.seal(*delivered)).status_code == 200  # to 'edge', as 'hq'
    assert link.applied_seq() == 2
    time.sleep(0.2)  # a start that got through would be claimed and run by now
    assert link.received() == []


def test_a_remote_execution_could_not_be_cancelled_after_its_sync_config_was_deleted(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """Left behind by a deletion of old (which ended nothing): cancelling it ends it at once."""
    child = remote_child(link, own_key, remote_key)
    with link.client.app.state.ctx.transaction() as tx:
        sync_configs.delete(tx.conn, REMOTE)
    cancelled = link.api.ok("POST", f"/execution/{child}/cancel")
    assert cancelled["status"] == "ENDED_CANCELLED"
    assert "no longer exists" in cancelled["message"]


def test_a_cancel_of_a_start_that_reached_the_other_side_waits_for_its_end(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """Acknowledged, the start may run over there: the other side reports how it ended."""
    child = remote_child(link, own_key, remote_key)
    collect(link)
    link.post(*link.seal(receiver=REMOTE, hello=CONTROLLED_HELLO, ack=1), name=REMOTE)
    record = link.api.ok("POST", f"/execution/{child}/cancel")
    assert record["status"] == "QUEUED"
    assert [m.type for m in collect(link)] == ["execution.cancel"]


def test_deleting_a_sync_config_stranded_its_unfinished_executions(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """A remote execution waiting to start and a received one running both end ENDED_ERROR."""
    child = remote_child(link, own_key, remote_key)
    assert link.post(*link.seal(link.start_message(script=WAITING_SCRIPT))).status_code == 200
    received = link.received()[0]["id"]
    link.api.wait_status(received, "RUNNING")

    link.api.ok("DELETE", f"/sync_config/{REMOTE}")
    link.api.ok("DELETE", f"/sync_config/{LISTENER}")
    for execution_id, name in ((child, REMOTE), (received, LISTENER)):
        record = link.api.wait_ended(execution_id)
        assert record["status"] == "ENDED_ERROR", record
        assert record["message"] == f"sync config '{name}' was deleted before this execution ended"
    time.sleep(0.5)  # its process was stopped; its end changed nothing
    assert link.api.ok("GET", f"/execution/{received}")["status"] == "ENDED_ERROR"


def test_over_a_live_link_a_withdrawn_start_is_reported_cancelled_by_the_other_side(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """The link exchanged just now: the other side answers the withdrawn start's cancel with
    an end, so that both sides agree (the start may have been on its way)."""
    create_controlling(link.api, own_key, remote_key, REMOTE)
    collect(link)  # the controlled side polled just now: the link is live
    link.api.create_flow("f", "def handler(system, this):\n    pass\n")
    child = link.api.start("f", remote_workspace_name=REMOTE)["id"]
    assert link.api.ok("POST", f"/execution/{child}/cancel")["status"] == "QUEUED"

    delivered = collect(link)
    assert [m.type for m in delivered] == ["execution.cancel", "execution.cancel"]
    answer = link.post(*link.seal(*delivered))  # to 'edge', the controlled side here
    assert answer.status_code == 200, answer.text
    updates = envelope.decode(answer.content).messages
    sealed = link.seal(*updates, receiver=REMOTE, hello=CONTROLLED_HELLO)
    assert link.post(*sealed, name=REMOTE).status_code == 200
    record = link.api.wait_ended(child)
    assert (record["status"], record["message"]) == (
        "ENDED_CANCELLED",
        "cancelled before it started",
    )
    assert record["remote_execution_id"] is None
    assert link.received() == []
