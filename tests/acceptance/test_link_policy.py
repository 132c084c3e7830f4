"""Two real workspaces: the controlled one decides what its link may run (accepted_scripts,
max_running), measured end to end. Each rule is shown beside its control, the same run with
the rule relaxed, so that a refusal or a cap cannot pass for a broken test."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import HUB_DIALS, Pair, PairFactory, generated_keys

MARKING = """def handler(system, this, inputs):
    with open(inputs["path"], "w") as marker:
        marker.write("ran")
"""
MARKING_SHA256 = hashlib.sha256(MARKING.encode()).hexdigest()
CATCHING = """import flow_api


def handler(system, this, inputs):
    try:
        this.flow("marking", remote_workspace_name="edge", path=inputs["path"])
    except flow_api.DependencyFailedError as exc:
        this.save(output_value={"error": type(exc).__name__, "message": str(exc)})
"""
HELD = """import time


def handler(system, this, inputs):
    started = time.time()
    time.sleep(inputs["hold_s"])
    this.save(output_value={"started": started, "ended": time.time()})
"""
FAN_OUT = """def handler(system, this, inputs):
    children = [
        this.flow("held", remote_workspace_name="edge", wait=False, hold_s=inputs["hold_s"])
        for _ in range(inputs["count"])
    ]
    this.wait_for(*children)
    this.save(output_value={"children": [child.id for child in children]})
"""
# Sent to the edge, where it tries a start over the edge's own controlling sync config 'onward'.
ONWARD = """import flow_api


def handler(system, this):
    try:
        this.flow("leaf", remote_workspace_name="onward", run=False).cancel()
    except flow_api.PermissionDenied as exc:
        this.save(output_value={"onward": str(exc)})
        return
    this.save(output_value={"onward": "started"})
"""
VIA_EDGE = """def handler(system, this):
    child = this.flow("onward", remote_workspace_name="edge")
    this.save(output_value=child.get("output_value"))
"""
DEFAULT_POLICY = {"accepted_scripts": "any", "max_running": None, "allow_onward_remote": False}


@pytest.fixture(scope="module")
def policy_pair() -> Iterator[Pair]:
    with contextlib.ExitStack() as stack:
        pair = PairFactory(stack)(HUB_DIALS)
        for name, script in (
            ("marking", MARKING),
            ("catching", CATCHING),
            ("held", HELD),
            ("fan_out", FAN_OUT),
            ("onward", ONWARD),
            ("via_edge", VIA_EDGE),
        ):
            pair.hub_api.create_flow(name, script)
        pair.edge_api.create_flow("leaf", "def handler(system, this):\n    pass\n")
        onward_keys, other_keys = generated_keys(), generated_keys()
        pair.edge_api.ok(
            "POST",
            "/sync_config",
            json={
                "name": "onward",
                "role": "controlling",
                "own_private_key": onward_keys.private,
                "remote_public_key": other_keys.public,
            },
        )
        yield pair


@pytest.fixture
def pair(policy_pair: Pair) -> Iterator[Pair]:
    """The module's pair with the default policy restored; every execution settles after."""
    policy_pair.wait_connected()
    yield policy_pair
    policy_pair.edge_api.ok("PATCH", "/sync_config/hub", json=DEFAULT_POLICY)
    try:
        policy_pair.assert_settled()
    except AssertionError:
        print(policy_pair.output())
        raise


def set_policy(pair: Pair, **fields: Any) -> None:
    pair.edge_api.ok("PATCH", "/sync_config/hub", json=fields)


def test_a_script_not_on_accepted_scripts_never_runs_and_fails_on_both_sides(
    pair: Pair, marker_dir: Path
) -> None:
    marker = marker_dir / "refused"
    set_policy(pair, accepted_scripts=["0" * 64])
    parent = pair.hub_api.run("catching", input_value={"path": str(marker)})
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    assert parent["output_value"]["error"] == "DependencyFailedError"
    (child,) = pair.hub_api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert child["status"] == "ENDED_ERROR"
    assert child["script_sha256"] == MARKING_SHA256, "the controlling side shows the digest"
    for phrase in ("sync config 'hub'", "accepted_scripts", MARKING_SHA256):
        assert phrase in child["message"]
    twin = pair.edge_api.ok("GET", f"/execution/{child['remote_execution_id']}")
    assert (twin["status"], twin["message"], twin["started_at"]) == (
        "ENDED_ERROR",
        child["message"],
        None,
    )
    assert not marker.exists(), "the refused script ran"

    set_policy(pair, accepted_scripts=[MARKING_SHA256])  # the control: the digest copied over
    marker = marker_dir / "accepted"
    parent = pair.hub_api.run("catching", input_value={"path": str(marker)})
    assert parent["status"] == "ENDED_SUCCESS" and parent["output_value"] == {}, parent
    assert marker.read_text() == "ran"


def test_a_received_execution_starts_nothing_over_other_links_unless_allowed(pair: Pair) -> None:
    refused = pair.hub_api.run("via_edge")
    assert refused["status"] == "ENDED_SUCCESS", refused["message"]
    said = refused["output_value"]["onward"]
    assert "sync config 'hub'" in said and "allow_onward_remote" in said

    set_policy(pair, allow_onward_remote=True)  # the control
    allowed = pair.hub_api.run("via_edge")
    assert allowed["output_value"] == {"onward": "started"}


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of ``intervals`` (start, end) that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:  # at a tie an end (-1) sorts first: touching is not overlapping
        current += step
        most = max(most, current)
    return most


@pytest.mark.parametrize("cap", [2, None])
def test_max_running_holds_the_received_executions_of_a_link(pair: Pair, cap: int | None) -> None:
    """With no cap (the control) the same six children overlap beyond two."""
    set_policy(pair, max_running=cap)
    parent = pair.hub_api.run("fan_out", input_value={"count": 6, "hold_s": 0.4})
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    outputs = [
        pair.hub_api.ok("GET", f"/execution/{child}")["output_value"]
        for child in parent["output_value"]["children"]
    ]
    at_once = most_at_once([(o["started"], o["ended"]) for o in outputs])
    if cap is None:
        assert at_once > 2, f"without a cap only {at_once} ran at once: the test sees nothing"
    else:
        assert 1 <= at_once <= cap, f"{at_once} received executions ran at once"
