"""'Why is my execution not running?': a record waiting on a remote child says why, in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.acceptance.conftest import HUB_DIALS, Pair
from tests.support.waiting import wait_until

WAITING_PARENT = """\
def handler(system, this):
    this.flow("remote_noop", remote_workspace_name="edge")
"""
NOOP = "def handler(system, this):\n    pass\n"


def test_execution_waiting_on_a_remote_child_names_the_failing_link_and_its_error(
    linked_pair: Callable[..., Pair],
) -> None:
    pair = linked_pair(HUB_DIALS)
    hub = pair.hub_api
    hub.create_flow("remote_noop", NOOP)
    hub.create_flow("waiting_parent", WAITING_PARENT)
    pair.edge.stop()  # the hub dials the edge, which is gone
    parent = hub.start("waiting_parent")

    def failing_reason() -> dict[str, Any] | None:
        record = hub.ok("GET", f"/execution/{parent['id']}")
        waits = record["waiting_on"]
        return waits[0] if waits and waits[0]["link_state"] == "failing" else None

    wait = wait_until(failing_reason, "the parent to wait on a failing link")
    assert wait["sync_config"] == "edge"
    assert wait["since"] is not None
    assert "cannot connect" in wait["last_error"]
    assert wait["reason"].startswith("the link is failing: cannot connect")
    child = hub.ok("GET", f"/execution/{wait['execution_id']}")
    assert child["waiting_on"][0]["link_state"] == "failing"  # the child says so too

    pair.restart("edge")
    ended = pair.hub_api.wait_ended(parent["id"], timeout_s=60)  # restart logs in anew
    assert ended["status"] == "ENDED_SUCCESS"
    assert ended["waiting_on"] == []


def test_waiting_on_is_empty_for_a_local_execution(linked_pair: Callable[..., Pair]) -> None:
    pair = linked_pair(HUB_DIALS)
    pair.hub_api.create_flow("local_noop", NOOP)
    record = pair.hub_api.run("local_noop")
    assert record["waiting_on"] == []
