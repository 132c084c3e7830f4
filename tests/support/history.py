"""History checker for link fault tests: what each remote execution wrote, and the verdict on both sides.

Remote executions run MARKED_SCRIPT, which appends one marker line per run to a file the test
owns. The checker reads both workspaces only through their REST APIs and that file.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient

MARKED_FLOW = "marked"
MARKED_PARENT_FLOW = "marked_parent"
HUB_CONFIG = "edge"  # the controlling side's sync config, as flows name it
RESTART_WORDS = "the workspace stopped"  # the runner's message for an execution a restart ended
CANCELLED_BEFORE_START = "cancelled before it started"
SETTLE_POLL_S = 0.1
RECHECK_S = 0.5  # a final status must still read the same this much later
PAGE = 1000
SHOWN_PROBLEMS = 25

MARKED_SCRIPT = """import hashlib
import os
import time


def handler(system, this, inputs):
    own_id, controlling_id = this.load("id", "remote_execution_id")
    line = f"{own_id} {controlling_id} {inputs['n']}\\n"
    # One write(2) on an O_APPEND descriptor: lines of concurrent executions never interleave.
    fd = os.open(inputs["markers"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    time.sleep(inputs.get("sleep_s", 0))
    n = inputs["n"]
    digest = hashlib.sha256(f"tether-{n}".encode()).hexdigest()
    this.save(output_value={"n": n, "square": n * n, "digest": digest})
"""

MARKED_PARENT_SCRIPT = f'''def handler(system, this, inputs):
    child = this.flow("{MARKED_FLOW}", remote_workspace_name="{HUB_CONFIG}", **inputs)
    this.save(output_value={{"child": child.get("output_value")}})
'''


def expected_output(n: int) -> dict[str, Any]:
    """What MARKED_SCRIPT outputs for input ``n`` in a clean run."""
    digest = hashlib.sha256(f"tether-{n}".encode()).hexdigest()
    return {"n": n, "square": n * n, "digest": digest}


def push_marked_flows(hub: ApiClient) -> None:
    """Create (or update) the marked flow and its parent in the controlling workspace."""
    for name, script in ((MARKED_FLOW, MARKED_SCRIPT), (MARKED_PARENT_FLOW, MARKED_PARENT_SCRIPT)):
        answer = hub.post("/flow", json={"name": name, "script": script})
        if answer.status_code == 409:
            hub.ok("PATCH", f"/flow/{name}", json={"script": script})
        else:
            assert answer.status_code == 201, answer.text


def all_executions(api: ApiClient) -> list[dict[str, Any]]:
    """Every execution of a workspace, page by page."""
    found: list[dict[str, Any]] = []
    while True:
        page = api.ok("GET", "/execution", params={"limit": PAGE, "offset": len(found)})
        found += page
        if len(page) < PAGE:
            return found


@dataclass(frozen=True)
class Marker:
    """One line a run of MARKED_SCRIPT wrote: the ids on both sides and its input."""

    own_id: str  # the controlled side's execution
    controlling_id: str  # the controlling side's execution it ran for
    n: int


@dataclass(frozen=True)
class Snapshot:
    """Both workspaces' executions at one moment, by id."""

    hub: dict[str, dict[str, Any]]
    edge: dict[str, dict[str, Any]]

    @classmethod
    def take(cls, hub: ApiClient, edge: ApiClient) -> Snapshot:
        return cls(
            {r["id"]: r for r in all_executions(hub)}, {r["id"]: r for r in all_executions(edge)}
        )

    @property
    def children(self) -> dict[str, dict[str, Any]]:
        """The controlling side's remote children, by id."""
        return {i: r for i, r in self.hub.items() if r["remote_workspace_name"] == HUB_CONFIG}

    @property
    def received(self) -> list[dict[str, Any]]:
        return [r for r in self.edge.values() if r["origin"] == "received"]


@dataclass
class History:
    """Remote executions a scenario requested, and the checks that every one converged correctly.

    ``requested`` holds ids the test was told of; the checker also covers every remote child
    the controlling side holds (a start whose answer was lost to a kill still counts).
    """

    markers: Path
    requested: set[str] = field(default_factory=set)
    parents: set[str] = field(default_factory=set)
    next_n: int = 0

    def inputs(self, sleep_s: float = 0.0) -> dict[str, Any]:
        """Fresh inputs for one more marked execution."""
        self.next_n += 1
        return {"n": self.next_n, "markers": str(self.markers), "sleep_s": sleep_s}

    def read_markers(self) -> list[Marker]:
        if not self.markers.exists():
            return []
        lines = self.markers.read_text().splitlines()
        markers = []
        for line in lines:
            own_id, controlling_id, n = line.split()
            markers.append(Marker(own_id, controlling_id, int(n)))
        return markers

    def check(
        self,
        hub: Callable[[], ApiClient],
        edge: Callable[[], ApiClient],
        *,
        restarted: Iterable[str] = (),
        timeout_s: float = 60.0,
    ) -> Snapshot:
        """Wait until both sides converge, then assert the history; returns the final snapshot.

        ``hub``/``edge`` return the current API clients (a restart replaces them).
        ``restarted`` names the sides ("hub", "edge") the scenario restarted: an execution
        running there may end ENDED_ERROR saying so (it ran at most once, both sides agree).
        """
        snapshot = self._converged(hub, edge, timeout_s)
        time.sleep(RECHECK_S)
        later = Snapshot.take(hub(), edge())
        problems = changed_after_end(snapshot, later)
        problems += self.problems(later, self.read_markers(), set(restarted))
        _fail_on(problems, "the history is wrong")
        return later

    def _converged(
        self, hub: Callable[[], ApiClient], edge: Callable[[], ApiClient], timeout_s: float
    ) -> Snapshot:

        def converged() -> Snapshot:
            snapshot = Snapshot.take(hub(), edge())
            _fail_on(unconverged(snapshot), "not converged")
            return snapshot

        return wait_until(converged, "both sides to converge", timeout_s, poll_s=SETTLE_POLL_S)

    def problems(self, snapshot: Snapshot, markers: list[Marker], restarted: set[str]) -> list[str]:
        """Everything wrong with a converged snapshot, given the markers the runs wrote."""
        children = snapshot.children
        problems = [
            f"requested {i} is unknown to the controlling side"
            for i in sorted(self.requested)
            if i not in children
        ]
        runs = Counter(m.controlling_id for m in markers)
        problems += [
            f"a marker names {i}, which the controlling side never requested"
            for i in runs
            if i not in children
        ]
        twins: dict[str, list[dict[str, Any]]] = {}
        for record in snapshot.received:
            twins.setdefault(record["remote_execution_id"], []).append(record)
            if record["remote_execution_id"] not in children:
                problems.append(f"edge {record['id']} has no counterpart on the controlling side")
        by_child = {m.controlling_id: m for m in markers}
        for child in children.values():
            problems += _child_problems(
                child,
                twins.get(child["id"], []),
                runs[child["id"]],
                by_child.get(child["id"]),
                "edge" in restarted,
            )
        for parent_id in sorted(self.parents):
            problems += _parent_problems(snapshot, parent_id, restarted)
        return problems


def unconverged(snapshot: Snapshot) -> list[str]:
    """Why the two sides have not converged yet: an execution not ended, or the sides disagree."""
    problems = [
        f"{side} {r['id']} ({r['name']}, {r['origin']}) is still {r['status']}"
        for side, records in (("hub", snapshot.hub), ("edge", snapshot.edge))
        for r in records.values()
        if not r["status"].startswith("ENDED_")
    ]
    received = {r["remote_execution_id"]: r for r in snapshot.received}
    for child in snapshot.children.values():
        twin = received.get(child["id"])
        if twin is not None and twin["status"] != child["status"]:
            problems.append(
                f"hub {child['id']} is {child['status']}, edge {twin['id']} is {twin['status']}"
            )
    return problems


def changed_after_end(before: Snapshot, after: Snapshot) -> list[str]:
    """Executions whose final status (or end time) changed: each must end exactly once."""
    problems = []
    for side, old, new in (("hub", before.hub, after.hub), ("edge", before.edge, after.edge)):
        for i, record in old.items():
            now = new.get(i)
            if now is None:
                problems.append(f"{side} {i} disappeared")
            elif (record["status"], record["ended_at"]) != (now["status"], now["ended_at"]):
                problems.append(
                    f"{side} {i} ended twice: {record['status']} at {record['ended_at']}, "
                    f"then {now['status']} at {now['ended_at']}"
                )
    return problems


def _child_problems(
    child: dict[str, Any],
    twins: list[dict[str, Any]],
    runs: int,
    marker: Marker | None,
    is_restart_allowed: bool,
) -> list[str]:
    """What is wrong with one requested remote execution and its twin on the controlled side."""
    name = f"hub {child['id']} (n={child['input_value'].get('n')}, {child['status']})"
    problems = []
    if len(twins) > 1:
        problems.append(f"{name} was received {len(twins)} times: {[t['id'] for t in twins]}")
    if runs > 1:
        problems.append(f"{name} ran {runs} times")
    twin = twins[0] if twins else None
    status, message = child["status"], child["message"] or ""
    if twin is None:
        # Only an execution cancelled before its start left this side never reached the other.
        if not (status == "ENDED_CANCELLED" and child["remote_execution_id"] is None):
            problems.append(f"{name} has no execution on the controlled side")
        if runs:
            problems.append(f"{name} ran without an execution on the controlled side")
        return problems
    if child["remote_execution_id"] != twin["id"]:
        problems.append(f"{name} names edge {child['remote_execution_id']}, not {twin['id']}")
    for key in ("status", "message", "output_value"):
        if child[key] != twin[key]:
            problems.append(f"{name}: {key} differs: hub {child[key]!r}, edge {twin[key]!r}")
    if marker is not None and marker.own_id != twin["id"]:
        problems.append(f"{name} ran as edge {marker.own_id}, not as its twin {twin['id']}")
    if status == "ENDED_SUCCESS":
        if runs != 1:
            problems.append(f"{name} succeeded but its marker counts {runs} runs")
        expected = expected_output(child["input_value"]["n"])
        if child["output_value"] != expected:
            problems.append(
                f"{name} output {child['output_value']!r}, a clean run gives {expected!r}"
            )
    elif status == "ENDED_CANCELLED":
        if CANCELLED_BEFORE_START in message and runs:
            problems.append(f"{name} was cancelled before it started, yet it ran")
    elif not (is_restart_allowed and status == "ENDED_ERROR" and RESTART_WORDS in message):
        problems.append(f"{name} ended {status}: {message!r}")
    return problems


def _parent_problems(snapshot: Snapshot, parent_id: str, restarted: set[str]) -> list[str]:
    """A parent ends with its child's clean outputs, or by a restart of either side."""
    parent = snapshot.hub.get(parent_id)
    if parent is None:
        return [f"parent {parent_id} is unknown"]
    status, message = parent["status"], parent["message"] or ""
    name = f"parent {parent_id} (n={parent['input_value'].get('n')})"
    if status == "ENDED_SUCCESS":
        expected = {"child": expected_output(parent["input_value"]["n"])}
        if parent["output_value"] != expected:
            return [f"{name} output {parent['output_value']!r}, a clean run gives {expected!r}"]
        return []
    if status == "ENDED_ERROR" and "hub" in restarted and RESTART_WORDS in message:
        return []  # the controlling side restarted while the parent waited
    if status == "ENDED_ERROR" and "edge" in restarted and "DependencyFailedError" in message:
        return []  # the controlled side restarted while the child ran
    return [f"{name} ended {status}: {message!r}"]


def _fail_on(problems: Iterable[str], headline: str) -> None:
    listed = list(problems)
    if listed:
        shown = "\n".join(listed[:SHOWN_PROBLEMS])
        more = len(listed) - SHOWN_PROBLEMS
        raise AssertionError(
            f"{headline} ({len(listed)} problems):\n{shown}"
            + (f"\n... and {more} more" if more > 0 else "")
        )
