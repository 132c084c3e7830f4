"""Two real workspaces linked over HTTP(S): remote executions end to end, in both dial directions.

The hub controls, the edge is controlled. Every test ends with every execution on both sides
settled: ended once, with the same final status on both sides (see Pair.assert_settled).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import EDGE_DIALS, HUB_DIALS, KeyPair, Pair
from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient

CHILD = """import os


def handler(system, this, inputs):
    print(f"child got a={inputs['a']}")
    this.log("structured entry", a=inputs["a"])
    this.save(output_value={"doubled": inputs["a"] * 2, "pid": os.getpid()})
"""
PARENT = """def handler(system, this):
    child = this.flow('f', remote_workspace_name='edge', a=1)
    this.save(output_value={"child": child.get("output_value"), "child_id": child.id})
"""
FAILING = """def handler(system, this):
    print("about to fail")
    raise RuntimeError("boom from the edge")
"""
CATCHING_PARENT = """import flow_api


def handler(system, this):
    try:
        this.flow('fail', remote_workspace_name='edge')
    except flow_api.DependencyFailedError as exc:
        this.save(output_value={"error": type(exc).__name__, "message": str(exc)})
        return
    this.error("the failed remote child did not raise")
"""
CHATTY = """def handler(system, this, inputs):
    for i in range(inputs["lines"]):
        print(f"line {i}")
    this.log("last", done=True)
"""
SLEEPER = """import os
import time


def handler(system, this, inputs):
    with open(inputs["marker"], "a") as marker:
        marker.write("started\\n")
    print("sleeping")
    go = inputs.get("go")  # a file whose appearance ends the sleep early
    deadline = time.monotonic() + inputs.get("seconds", 60)
    while time.monotonic() < deadline and not (go and os.path.exists(go)):
        time.sleep(0.02)
    this.save(output_value={"slept": True})
"""
SLEEPY_PARENT = """def handler(system, this, inputs):
    this.flow('sleeper', remote_workspace_name='edge', **inputs)
"""
FAN_OUT = """def handler(system, this):
    children = [
        this.flow('f', remote_workspace_name='edge', wait=False, a=i) for i in range(3)
    ]
    started = [c.get("status") for c in children]
    this.wait_for(*children)
    this.save(output_value={
        "started": started,
        "doubled": [c.get("output_value")["doubled"] for c in children],
        "ids": [c.id for c in children],
    })
"""
RUN_LATER = """def handler(system, this):
    child = this.flow('f', remote_workspace_name='edge', run=False, a=5)
    before = child.get("status")
    child.run_async()
    child.wait()
    this.save(output_value={"before": before, "doubled": child.get("output_value")["doubled"]})
"""
ALL_ENDED = """def handler(system, this):
    good = this.flow('f', remote_workspace_name='edge', wait=False, a=2)
    bad = this.flow('fail', remote_workspace_name='edge', wait=False)
    ended = this.wait_for(good, bad, return_when=system.return_when.ALL_ENDED)
    this.save(output_value={
        "ended": len(ended),
        "statuses": [good.get("status"), bad.get("status")],
    })
"""
TRY_TARGET = """import flow_api


def handler(system, this, inputs):
    try:
        this.flow('f', remote_workspace_name=inputs["target"], a=1)
    except flow_api.FlowApiError as exc:
        this.save(output_value={"error": type(exc).__name__, "message": str(exc)})
        return
    this.error("the remote child started")
"""
TICKER = """import time


def handler(system, this, inputs):
    for i in range(inputs["ticks"]):
        print(f"tick {i}")
        time.sleep(0.05)
"""
ROUNDS_PARENT = """def handler(system, this, inputs):
    for _ in range(inputs["rounds"]):
        this.flow("quick", remote_workspace_name="edge")
"""
QUICK = """def handler(system, this):
    return None
"""
FLOWS = {
    "f": CHILD,
    "rounds": ROUNDS_PARENT,
    "quick": QUICK,
    "parent": PARENT,
    "fail": FAILING,
    "catching_parent": CATCHING_PARENT,
    "chatty": CHATTY,
    "sleeper": SLEEPER,
    "sleepy_parent": SLEEPY_PARENT,
    "fan_out": FAN_OUT,
    "run_later": RUN_LATER,
    "all_ended": ALL_ENDED,
    "try_target": TRY_TARGET,
    "ticker": TICKER,
}
WAIT_S = 30.0


def push_flows(api: ApiClient) -> None:
    """Create (or update) the test flows in a workspace."""
    for name, script in FLOWS.items():
        answer = api.post("/flow", json={"name": name, "script": script})
        if answer.status_code == 409:
            api.ok("PATCH", f"/flow/{name}", json={"script": script})
        else:
            assert answer.status_code == 201, answer.text


def markers(path: Path) -> int:
    """How many times a script wrote its start marker into ``path``."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def twin(pair: Pair, child: dict[str, Any]) -> dict[str, Any]:
    """The edge's execution for a hub child, once the edge has reported it."""

    def find() -> dict[str, Any] | None:
        remote_id = pair.hub_api.ok("GET", f"/execution/{child['id']}")["remote_execution_id"]
        return pair.edge_api.ok("GET", f"/execution/{remote_id}") if remote_id else None

    return wait_until(find, f"the edge's twin of {child['id']}")


def start_sleeper(pair: Pair, marker: Path, seconds: float = 60) -> dict[str, Any]:
    """A remote sleeper started over the API, once it runs on the edge."""
    child = pair.hub_api.start(
        "sleeper",
        remote_workspace_name="edge",
        input_value={"marker": str(marker), "seconds": seconds},
    )
    pair.hub_api.wait_status(child["id"], "RUNNING")
    wait_until(lambda: markers(marker) == 1, "the sleeper to start")
    return child


# Remote executions over the shared pair, in both dial directions.


def test_remote_child_returns_its_outputs_and_runs_from_the_script_snapshot(pair: Pair) -> None:
    push_flows(pair.hub_api)
    parent = pair.hub_api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    assert parent["output_value"]["child"]["doubled"] == 2
    child = pair.hub_api.ok("GET", f"/execution/{parent['output_value']['child_id']}")
    assert child["status"] == "ENDED_SUCCESS"
    assert child["parent_id"] == parent["id"]
    assert child["remote_workspace_name"] == "edge"
    remote = pair.edge_api.ok("GET", f"/execution/{child['remote_execution_id']}")
    assert remote["origin"] == "received"
    assert remote["status"] == "ENDED_SUCCESS"
    assert remote["script"] == CHILD
    assert remote["input_value"] == {"a": 1}
    assert remote["output_value"] == child["output_value"]
    assert remote["remote_execution_id"] == child["id"]
    assert remote["parent_id"] is None
    assert pair.edge_api.get("/flow/f").status_code == 404, "the flow itself must not travel"


def test_a_quick_remote_round_takes_one_request_on_the_link(pair: Pair) -> None:
    """The dialer renews a poll that delivered messages only when its own answer is written
    (or LINGER_S later): the renewal carries the child's end, so a round of start and end
    costs one request, where a renewal at once and a separate sender would cost two."""
    push_flows(pair.hub_api)
    before = requests_accepted(pair)
    parent = pair.hub_api.run("rounds", input_value={"rounds": 20})
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    requests = requests_accepted(pair) - before
    # 40 or more without the lingering; some slack for a slow round on a busy machine
    assert 20 <= requests <= 30, f"{requests} requests for 20 rounds ({pair.direction})"


def requests_accepted(pair: Pair) -> int:
    """Envelopes the listener accepted so far: each one's nonce is kept (against replays)."""
    path = pair.listener.data_dir / "tether.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM nonce").fetchone()[0])


def test_remote_failure_raises_dependency_failed_in_the_parent(pair: Pair) -> None:
    push_flows(pair.hub_api)
    parent = pair.hub_api.run("catching_parent")
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    assert parent["output_value"]["error"] == "DependencyFailedError"
    assert "ENDED_ERROR" in parent["output_value"]["message"]
    (child,) = pair.hub_api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert child["status"] == "ENDED_ERROR"
    assert "boom from the edge" in child["message"]

    pair.hub_api.ok("PATCH", "/flow/f", json={"script": FAILING})
    try:
        ended = pair.hub_api.wait_ended(pair.hub_api.start("parent")["id"])
    finally:
        pair.hub_api.ok("PATCH", "/flow/f", json={"script": CHILD})
    assert ended["status"] == "ENDED_ERROR"
    assert "DependencyFailedError" in ended["message"]


def test_remote_log_arrives_on_the_child_record_in_order(pair: Pair) -> None:
    push_flows(pair.hub_api)
    lines = 1234  # more than one update carries: the log travels in chunks
    child = pair.hub_api.run("chatty", remote_workspace_name="edge", input_value={"lines": lines})
    assert child["status"] == "ENDED_SUCCESS", child["message"]
    log = pair.hub_api.ok("GET", f"/execution/{child['id']}/log", params={"limit": 5000})
    assert [e["message"] for e in log] == [f"line {i}" for i in range(lines)] + ["last"]
    assert log[-1]["fields"] == {"done": True}
    remote_log = pair.edge_api.ok(
        "GET", f"/execution/{child['remote_execution_id']}/log", params={"limit": 5000}
    )
    assert [(e["time"], e["message"]) for e in remote_log] == [
        (e["time"], e["message"]) for e in log
    ]


def test_remote_child_log_lines_arrive_while_it_runs(pair: Pair, marker_dir: Path) -> None:
    push_flows(pair.hub_api)
    child = start_sleeper(pair, marker_dir / "marker")
    wait_until(lambda: pair.hub_api.log(child["id"]) == ["sleeping"], "the log of a running child")
    pair.hub_api.ok("POST", f"/execution/{child['id']}/cancel")
    pair.hub_api.wait_ended(child["id"])


def test_cancel_of_a_running_remote_child_ends_it_cancelled_on_both_sides(
    pair: Pair, marker_dir: Path
) -> None:
    push_flows(pair.hub_api)
    child = start_sleeper(pair, marker_dir / "marker")
    pair.hub_api.ok("POST", f"/execution/{child['id']}/cancel")
    ended = pair.hub_api.wait_ended(child["id"], timeout_s=WAIT_S)
    assert ended["status"] == "ENDED_CANCELLED"
    assert pair.edge_api.wait_ended(ended["remote_execution_id"])["status"] == "ENDED_CANCELLED"
    assert markers(marker_dir / "marker") == 1


def test_cancelling_the_parent_cancels_its_running_remote_child(
    pair: Pair, marker_dir: Path
) -> None:
    push_flows(pair.hub_api)
    marker = marker_dir / "marker"
    parent = pair.hub_api.start("sleepy_parent", input_value={"marker": str(marker)})
    wait_until(lambda: markers(marker) == 1, "the remote child to start")
    pair.hub_api.ok("POST", f"/execution/{parent['id']}/cancel")
    assert pair.hub_api.wait_ended(parent["id"])["status"] == "ENDED_CANCELLED"
    (child,) = pair.hub_api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert pair.hub_api.wait_ended(child["id"])["status"] == "ENDED_CANCELLED"
    assert pair.edge_api.wait_ended(twin(pair, child)["id"])["status"] == "ENDED_CANCELLED"


def test_api_starts_an_execution_in_the_linked_workspace(pair: Pair) -> None:
    push_flows(pair.hub_api)
    started = pair.hub_api.start("f", remote_workspace_name="edge", input_value={"a": 4})
    assert started["remote_workspace_name"] == "edge"
    assert started["status"] == "QUEUED"
    ended = pair.hub_api.wait_ended(started["id"])
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    assert ended["output_value"]["doubled"] == 8
    assert ended["started_at"] is not None and ended["ended_at"] is not None
    remote = pair.edge_api.ok("GET", f"/execution/{ended['remote_execution_id']}")
    assert (remote["origin"], remote["input_value"]) == ("received", {"a": 4})
    assert pair.hub_api.log(started["id"]) == ["child got a=4", "structured entry"]


def test_wait_false_and_wait_for_on_remote_children(pair: Pair) -> None:
    push_flows(pair.hub_api)
    parent = pair.hub_api.run("fan_out")
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    output = parent["output_value"]
    assert output["doubled"] == [0, 2, 4]
    assert all(status in ("QUEUED", "RUNNING", "ENDED_SUCCESS") for status in output["started"])
    remote_ids = {twin(pair, {"id": i})["remote_execution_id"] for i in output["ids"]}
    assert remote_ids == set(output["ids"])


def test_run_false_then_run_async_starts_the_remote_child(pair: Pair) -> None:
    push_flows(pair.hub_api)
    parent = pair.hub_api.run("run_later")
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    assert parent["output_value"] == {"before": "PENDING", "doubled": 10}


def test_pending_remote_execution_started_over_the_api_runs_remotely(pair: Pair) -> None:
    push_flows(pair.hub_api)
    pending = pair.hub_api.start("f", remote_workspace_name="edge", run=False, input_value={"a": 3})
    assert pending["status"] == "PENDING"
    time.sleep(0.2)  # nothing may cross the link for a PENDING execution
    assert pair.hub_api.ok("GET", f"/execution/{pending['id']}")["remote_execution_id"] is None
    pair.hub_api.ok("POST", f"/execution/{pending['id']}/run")
    ended = pair.hub_api.wait_ended(pending["id"])
    assert (ended["status"], ended["output_value"]["doubled"]) == ("ENDED_SUCCESS", 6)

    never_run = pair.hub_api.start("f", remote_workspace_name="edge", run=False)
    cancelled = pair.hub_api.ok("POST", f"/execution/{never_run['id']}/cancel")
    assert cancelled["status"] == "ENDED_CANCELLED"
    assert cancelled["remote_execution_id"] is None


def test_wait_for_all_ended_returns_a_failed_remote_child_without_raising(pair: Pair) -> None:
    push_flows(pair.hub_api)
    parent = pair.hub_api.run("all_ended")
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    assert parent["output_value"] == {"ended": 2, "statuses": ["ENDED_SUCCESS", "ENDED_ERROR"]}


def test_remote_workspace_name_must_name_an_enabled_controlling_sync_config(pair: Pair) -> None:
    push_flows(pair.hub_api)
    pair.hub_api.ok("POST", "/sync_config", json={"name": "upstream", "role": "controlled"})
    pair.hub_api.ok(
        "POST",
        "/sync_config",
        json={"name": "off", "role": "controlling", "enabled": False},
    )
    expected = {
        "nowhere": "no sync config has that name",
        "off": "disabled",
        "upstream": "role is 'controlled'",
    }
    try:
        for target, words in expected.items():
            parent = pair.hub_api.run("try_target", input_value={"target": target})
            assert parent["status"] == "ENDED_SUCCESS", parent["message"]
            message = parent["output_value"]["message"]
            assert f"'{target}'" in message and words in message, message
            assert pair.hub_api.ok("GET", "/execution", params={"parent_id": parent["id"]}) == []
            answer = pair.hub_api.post(
                "/execution", json={"flow_name": "f", "remote_workspace_name": target}
            )
            assert answer.status_code == 409, answer.text
            assert words in answer.json()["message"]
    finally:
        for name in ("upstream", "off"):
            pair.hub_api.ok("DELETE", f"/sync_config/{name}")

    # The controlled side cannot start executions in the controlling one.
    push_flows(pair.edge_api)
    try:
        parent = pair.edge_api.run("try_target", input_value={"target": "hub"})
        assert parent["status"] == "ENDED_SUCCESS", parent["message"]
        assert "role is 'controlled'" in parent["output_value"]["message"]
    finally:
        for name in FLOWS:
            pair.edge_api.ok("DELETE", f"/flow/{name}")


def test_two_controlling_sides_fail_the_link_until_one_role_is_changed(pair: Pair) -> None:
    push_flows(pair.hub_api)
    pair.edge_api.ok("PATCH", "/sync_config/hub", json={"role": "controlling"})
    try:
        for side in ("hub", "edge"):
            status = pair.wait_link_state(side, "failing")
            assert "both sides of this link have role 'controlling'" in status["last_error"]
        child = pair.hub_api.start("f", remote_workspace_name="edge", input_value={"a": 6})
        time.sleep(0.3)  # nothing crosses a link whose first contact failed
        assert pair.hub_api.ok("GET", f"/execution/{child['id']}")["status"] == "QUEUED"
    finally:
        pair.edge_api.ok("PATCH", "/sync_config/hub", json={"role": "controlled"})
    pair.wait_connected()
    ended = pair.hub_api.wait_ended(child["id"])
    assert (ended["status"], ended["output_value"]["doubled"]) == ("ENDED_SUCCESS", 12)


def test_cancel_issued_while_the_controlled_side_is_stopped_arrives_after_restart(
    pair: Pair, marker_dir: Path
) -> None:
    push_flows(pair.hub_api)
    marker = marker_dir / "marker"
    pair.edge.stop()
    child = pair.hub_api.start(
        "sleeper", remote_workspace_name="edge", input_value={"marker": str(marker)}
    )
    cancelled = pair.hub_api.ok("POST", f"/execution/{child['id']}/cancel")
    # The start was withdrawn: over a link seen down the child ends at once; while the link
    # still looks live (its last exchange was moments ago), the edge reports it after restart.
    assert cancelled["status"] in ("ENDED_CANCELLED", "QUEUED"), cancelled
    pair.restart("edge")
    ended = pair.hub_api.wait_ended(child["id"])
    assert ended["status"] == "ENDED_CANCELLED", ended["message"]
    assert ended["remote_execution_id"] is None, "the start must never reach the edge"
    pair.assert_settled()
    assert markers(marker) == 0, "a withdrawn start must not run"


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_restart_of_the_controlled_side_ends_its_remote_execution_in_error_once(
    pair: Pair, marker_dir: Path, how: str
) -> None:
    push_flows(pair.hub_api)
    marker = marker_dir / "marker"
    parent = pair.hub_api.start("sleepy_parent", input_value={"marker": str(marker)})
    wait_until(lambda: markers(marker) == 1, "the remote child to start")
    getattr(pair.edge, how)()  # kill -9, or a graceful stop
    pair.restart("edge")
    ended = pair.hub_api.wait_ended(parent["id"])
    assert ended["status"] == "ENDED_ERROR"
    assert "DependencyFailedError" in ended["message"]
    (child,) = pair.hub_api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert child["status"] == "ENDED_ERROR"
    assert "workspace stopped" in child["message"]
    remote = pair.edge_api.ok("GET", f"/execution/{child['remote_execution_id']}")
    assert (remote["status"], remote["message"]) == (child["status"], child["message"])
    pair.assert_settled()
    assert markers(marker) == 1, "the remote execution ran again after the restart"


@pytest.mark.parametrize("child_ends", ["while_down", "after_restart"])
def test_kill_of_the_controlling_side_still_receives_the_child_final_status(
    pair: Pair, marker_dir: Path, child_ends: str
) -> None:
    push_flows(pair.hub_api)
    marker, go = marker_dir / "marker", marker_dir / "go"
    parent = pair.hub_api.start("sleepy_parent", input_value={"marker": str(marker), "go": str(go)})
    wait_until(lambda: markers(marker) == 1, "the remote child to start")
    (child,) = pair.hub_api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    pair.hub_api.wait_status(child["id"], "RUNNING")
    remote_id = twin_id_on_edge(pair, child["id"])
    pair.hub.kill()
    if child_ends == "while_down":
        go.touch()
        assert pair.edge_api.wait_ended(remote_id)["status"] == "ENDED_SUCCESS"
        pair.restart("hub")
    else:
        pair.restart("hub")
        pair.hub_api.wait_ended(parent["id"])  # the restart ends the parent that ran here
        assert pair.hub_api.ok("GET", f"/execution/{child['id']}")["status"] == "RUNNING"
        assert pair.edge_api.ok("GET", f"/execution/{remote_id}")["status"] == "RUNNING"
        go.touch()
    ended_child = pair.hub_api.wait_ended(child["id"])
    assert ended_child["status"] == "ENDED_SUCCESS", ended_child["message"]
    assert ended_child["output_value"] == {"slept": True}
    ended_parent = pair.hub_api.wait_ended(parent["id"])
    assert ended_parent["status"] == "ENDED_ERROR"
    assert "workspace stopped" in ended_parent["message"]
    pair.assert_settled()
    assert markers(marker) == 1


def twin_id_on_edge(pair: Pair, hub_id: str) -> str:
    """The edge's id of the execution started for hub execution ``hub_id`` (asks the edge)."""

    def find() -> str | None:
        received = pair.edge_api.ok("GET", "/execution", params={"origin": "received"})
        return next((r["id"] for r in received if r["remote_execution_id"] == hub_id), None)

    return wait_until(find, f"the edge's execution for {hub_id}")


# Links with their own setup.


@pytest.mark.parametrize("direction", [HUB_DIALS, EDGE_DIALS])
def test_cancel_issued_while_the_link_is_cut_reaches_the_running_remote_execution(
    linked_pair: Callable[..., Pair], marker_dir: Path, direction: str
) -> None:
    pair = linked_pair(direction, has_proxy=True)
    assert pair.proxy is not None
    push_flows(pair.hub_api)
    child = start_sleeper(pair, marker_dir / "marker")
    pair.proxy.set_mode("refuse")
    pair.proxy.cut_all()
    dialer_side = "hub" if direction == HUB_DIALS else "edge"
    pair.wait_link_state(dialer_side, "failing")
    pair.hub_api.ok("POST", f"/execution/{child['id']}/cancel")
    time.sleep(0.3)  # the cancel cannot cross: both sides still show the execution running
    assert pair.hub_api.ok("GET", f"/execution/{child['id']}")["status"] == "RUNNING"
    assert pair.edge_api.ok("GET", f"/execution/{twin(pair, child)['id']}")["status"] == "RUNNING"
    pair.proxy.set_mode("pass")
    ended = pair.hub_api.wait_ended(child["id"])
    assert ended["status"] == "ENDED_CANCELLED", ended["message"]
    assert pair.edge_api.wait_ended(ended["remote_execution_id"])["status"] == "ENDED_CANCELLED"
    pair.assert_settled()
    assert markers(marker_dir / "marker") == 1


@pytest.mark.parametrize("direction", [HUB_DIALS, EDGE_DIALS])
def test_https_with_a_private_ca_and_a_clear_error_for_the_wrong_ca(
    linked_pair: Callable[..., Pair], direction: str
) -> None:
    trustme = pytest.importorskip("trustme")
    pair = linked_pair(direction, is_tls=True)
    assert pair.listener.url.startswith("https://")
    push_flows(pair.hub_api)
    child = pair.hub_api.run("f", remote_workspace_name="edge", input_value={"a": 7})
    assert (child["status"], child["output_value"]["doubled"]) == ("ENDED_SUCCESS", 14)

    dialer_side = "hub" if direction == HUB_DIALS else "edge"
    config_name = "edge" if dialer_side == "hub" else "hub"
    dialer = pair.api(dialer_side)
    wrong_ca = trustme.CA().cert_pem.bytes().decode()
    dialer.ok("PATCH", f"/sync_config/{config_name}", json={"ca_certificate": wrong_ca})
    status = pair.wait_link_state(dialer_side, "failing")
    assert "certificate" in status["last_error"], status
    assert "ca_certificate" in status["last_error"], "the error should say what to fix"

    # verify_ssl off trusts any certificate (the dialer logs a warning when it starts).
    dialer.ok("PATCH", f"/sync_config/{config_name}", json={"verify_ssl": False})
    pair.wait_connected()
    child = pair.hub_api.run("f", remote_workspace_name="edge", input_value={"a": 8})
    assert (child["status"], child["output_value"]["doubled"]) == ("ENDED_SUCCESS", 16)
    assert any("TLS verification is off" in line for line in pair.dialer.output)

    assert pair.tls is not None
    mended = {"verify_ssl": True, "ca_certificate": pair.tls.ca_pem}
    dialer.ok("PATCH", f"/sync_config/{config_name}", json=mended)
    pair.wait_connected()
    child = pair.hub_api.run("f", remote_workspace_name="edge", input_value={"a": 9})
    assert (child["status"], child["output_value"]["doubled"]) == ("ENDED_SUCCESS", 18)
    pair.assert_settled()


def _run(*command: str) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    subprocess.run(command, check=True, capture_output=True)


def openssl_genrsa(path: Path) -> KeyPair:
    """A PKCS#1 private key from `openssl genrsa`, its public key as PKCS#1 PEM."""
    _run("openssl", "genrsa", "-traditional", "-out", str(path), "2048")
    _run("openssl", "rsa", "-in", str(path), "-RSAPublicKey_out", "-out", f"{path}.pub")
    private = path.read_text()
    assert "BEGIN RSA PRIVATE KEY" in private
    return KeyPair(private, Path(f"{path}.pub").read_text())


def openssl_genpkey(path: Path) -> KeyPair:
    """A PKCS#8 private key from `openssl genpkey`, its public key as SubjectPublicKeyInfo PEM."""
    _run(
        "openssl",
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        str(path),
    )
    _run("openssl", "pkey", "-in", str(path), "-pubout", "-out", f"{path}.pub")
    private = path.read_text()
    assert "BEGIN PRIVATE KEY" in private
    return KeyPair(private, Path(f"{path}.pub").read_text())


def ssh_keygen(path: Path) -> KeyPair:
    """A PEM private key from `ssh-keygen -t rsa -m PEM`, its public key in OpenSSH format."""
    _run("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", str(path))
    public = Path(f"{path}.pub").read_text()
    assert public.startswith("ssh-rsa ")
    return KeyPair(path.read_text(), public)


@pytest.mark.parametrize(
    ("make_keys", "direction"),
    [(openssl_genrsa, HUB_DIALS), (openssl_genpkey, EDGE_DIALS), (ssh_keygen, HUB_DIALS)],
    ids=["openssl-genrsa", "openssl-genpkey", "ssh-keygen"],
)
def test_keys_made_by_common_tools_link_end_to_end(
    linked_pair: Callable[..., Pair],
    marker_dir: Path,
    make_keys: Callable[[Path], KeyPair],
    direction: str,
) -> None:
    hub_keys, edge_keys = make_keys(marker_dir / "hub"), make_keys(marker_dir / "edge")
    pair = linked_pair(direction, hub_keys=hub_keys, edge_keys=edge_keys)
    hub_view = pair.hub_api.ok("GET", "/sync_config/edge")
    edge_view = pair.edge_api.ok("GET", "/sync_config/hub")
    assert hub_view["remote_key_fingerprints"] == [edge_view["own_key_fingerprint"]]
    assert edge_view["remote_key_fingerprints"] == [hub_view["own_key_fingerprint"]]
    push_flows(pair.hub_api)
    parent = pair.hub_api.run("parent")
    assert parent["status"] == "ENDED_SUCCESS", parent["message"]
    assert parent["output_value"]["child"]["doubled"] == 2
    pair.assert_settled()


def test_send_all_executions_mirrors_past_executions_and_follows_later_changes(
    linked_pair: Callable[..., Pair],
) -> None:
    pair = linked_pair(EDGE_DIALS)
    push_flows(pair.hub_api)
    past = [pair.hub_api.run("f", input_value={"a": i}) for i in range(3)]
    past.append(pair.hub_api.run("fail"))
    pending = pair.hub_api.start("f", run=False, input_value={"a": 9})
    remote_child = pair.hub_api.run("f", remote_workspace_name="edge", input_value={"a": 1})
    assert pair.edge_api.ok("GET", "/execution", params={"origin": "mirror"}) == []

    pair.hub_api.ok("PATCH", "/sync_config/edge", json={"send_all_executions": True})

    def mirrors() -> dict[str, dict[str, Any]]:
        found = pair.edge_api.ok("GET", "/execution", params={"origin": "mirror"})
        return {m["remote_execution_id"]: m for m in found}

    expected = {ex["id"]: ex for ex in [*past, pending]}
    mirrored = wait_until(lambda: (m := mirrors()).keys() >= expected.keys() and m, "the backfill")
    assert remote_child["id"] not in mirrored, "an execution that ran over there is not mirrored"
    for source_id, source in expected.items():
        mirror = mirrored[source_id]
        for key in ("name", "flow_name", "status", "input_value", "output_value", "message"):
            assert mirror[key] == source[key], (key, mirror, source)
        assert mirror["script"] == FLOWS[source["flow_name"]]
    backfill = pair.status("hub")["backfill"]
    assert backfill["is_complete"] and backfill["done"] == backfill["total"] >= len(expected)

    pair.hub_api.ok("POST", f"/execution/{pending['id']}/run")
    assert pair.hub_api.wait_ended(pending["id"])["status"] == "ENDED_SUCCESS"
    later = pair.hub_api.run("f", input_value={"a": 11})
    mirrored = wait_until(
        lambda: (
            (m := mirrors()).get(later["id"], {}).get("status") == "ENDED_SUCCESS"
            and m[pending["id"]]["status"] == "ENDED_SUCCESS"
            and m
        ),
        "later changes to be mirrored",
    )
    assert mirrored[pending["id"]]["output_value"] == {
        "doubled": 18,
        "pid": mirrored[pending["id"]]["output_value"]["pid"],
    }
    assert mirrored[later["id"]]["output_value"]["doubled"] == 22
    answer = pair.edge_api.post(f"/execution/{mirrored[later['id']]['id']}/cancel")
    assert answer.status_code == 409, "a mirror is read-only"
    pair.assert_settled()


@pytest.mark.parametrize("direction", [HUB_DIALS, EDGE_DIALS])
def test_sync_interval_batches_messages_and_executions_still_complete(
    linked_pair: Callable[..., Pair], direction: str
) -> None:
    interval = {"sync_interval": 1}
    pair = linked_pair(direction, hub_fields=interval, edge_fields=interval)
    push_flows(pair.hub_api)
    # A remote execution that logs all the time keeps messages flowing in both directions.
    ticks = 80
    ticker = pair.hub_api.start(
        "ticker", remote_workspace_name="edge", input_value={"ticks": ticks}
    )
    pair.hub_api.wait_status(ticker["id"], "RUNNING")
    exchanges: set[float] = set()

    dialer_side = "hub" if direction == HUB_DIALS else "edge"

    def note_exchange() -> None:
        last = pair.status(dialer_side)["last_exchange_at"]
        exchanges.add(datetime.fromisoformat(last).timestamp())

    started = []
    for i in range(5):  # spread over about 0.6 s: one or two intervals
        started.append(pair.hub_api.start("f", remote_workspace_name="edge", input_value={"a": i}))
        note_exchange()
        time.sleep(0.15)
    ids = [s["id"] for s in started]

    def all_ended() -> list[dict[str, Any]] | None:
        note_exchange()
        records = [pair.hub_api.ok("GET", f"/execution/{i}") for i in ids]
        return records if all(r["status"].startswith("ENDED_") for r in records) else None

    ended = wait_until(all_ended, "the batched executions")
    assert [e["status"] for e in ended] == ["ENDED_SUCCESS"] * 5
    assert [e["output_value"]["doubled"] for e in ended] == [0, 2, 4, 6, 8]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(sorted(exchanges))]
    assert len(gaps) >= 1 and min(gaps) > 0.5, f"exchanges were not an interval apart: {gaps}"
    arrivals = sorted(
        datetime.fromisoformat(
            pair.edge_api.ok("GET", f"/execution/{e['remote_execution_id']}")["created_at"]
        ).timestamp()
        for e in ended
    )
    batches = 1 + sum(1 for a, b in itertools.pairwise(arrivals) if b - a > 0.1)
    assert batches <= 2, f"the starts arrived in {batches} exchanges, not batched: {arrivals}"
    ticker = pair.hub_api.wait_ended(ticker["id"])
    assert ticker["status"] == "ENDED_SUCCESS", ticker["message"]
    assert pair.hub_api.log(ticker["id"]) == [f"tick {i}" for i in range(ticks)]
    pair.assert_settled()


BURST = """def handler(system, this, inputs):
    children = [
        this.flow('noop', remote_workspace_name='edge', wait=False) for _ in range(inputs["n"])
    ]
    this.wait_for(*children)
"""


@pytest.mark.parametrize("direction", [HUB_DIALS, EDGE_DIALS])
def test_a_burst_of_remote_executions_ends_well_within_one_long_poll_hold(
    linked_pair: Callable[..., Pair], direction: str
) -> None:
    # Regression: a message committed while every sender was busy was left for the next
    # long-poll, a whole hold later. With a 120 s hold, such a message would blow the budget.
    pair = linked_pair(direction, env={"TETHER_LONG_POLL_S": "120"})
    pair.hub_api.create_flow("noop", "def handler(system, this):\n    return None\n")
    pair.hub_api.create_flow("burst", BURST)
    started = time.monotonic()
    parent = pair.hub_api.start("burst", input_value={"n": 300})
    ended = pair.hub_api.wait_ended(parent["id"], timeout_s=90)
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    assert time.monotonic() - started < 90
    pair.assert_settled()
