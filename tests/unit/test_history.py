"""The fault tests' history checker flags every kind of wrong history, and accepts a right one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.support.history import (
    HUB_CONFIG,
    RESTART_WORDS,
    History,
    Marker,
    Snapshot,
    changed_after_end,
    expected_output,
    unconverged,
)

RESTART_MESSAGE = f"{RESTART_WORDS} while this execution was running"


def record(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": "marked",
        "status": "ENDED_SUCCESS",
        "message": None,
        "output_value": {},
        "input_value": {},
        "origin": "local",
        "remote_workspace_name": None,
        "remote_execution_id": None,
        "ended_at": "2026-11-29T10:00:00Z",
    }
    return {**base, **values}


def linked(
    n: int, status: str = "ENDED_SUCCESS", message: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A hub child and its edge twin that agree, with a clean run's outputs when successful."""
    output = expected_output(n) if status == "ENDED_SUCCESS" else {}
    child = record(
        input_value={"n": n}, remote_workspace_name=HUB_CONFIG, status=status, message=message
    )
    twin = record(origin="received", remote_execution_id=child["id"], status=status)
    twin["message"] = message
    child["output_value"] = twin["output_value"] = output
    child["remote_execution_id"] = twin["id"]
    return child, twin


def snapshot(*records: tuple[dict[str, Any], dict[str, Any]]) -> Snapshot:
    return Snapshot(
        {child["id"]: child for child, _ in records},
        {twin["id"]: twin for _, twin in records},
    )


def ran(child: dict[str, Any], twin: dict[str, Any]) -> Marker:
    return Marker(twin["id"], child["id"], child["input_value"]["n"])


def problems(snap: Snapshot, markers: list[Marker], restarted: Iterable[str] = ()) -> list[str]:
    history = History(Path("unused"))  # the markers come as an argument
    history.requested = set(snap.children)
    return history.problems(snap, markers, set(restarted))


def test_a_clean_history_has_no_problems() -> None:
    good = linked(1)
    assert problems(snapshot(good), [ran(*good)]) == []


def test_a_second_run_is_flagged() -> None:
    good = linked(1)
    assert any("ran 2 times" in p for p in problems(snapshot(good), [ran(*good)] * 2))


def test_a_success_without_a_marker_is_flagged() -> None:
    good = linked(1)
    assert any("marker counts 0" in p for p in problems(snapshot(good), []))


def test_outputs_unlike_a_clean_run_are_flagged() -> None:
    child, twin = linked(1)
    child["output_value"] = twin["output_value"] = {"n": 1}
    assert any("clean run" in p for p in problems(snapshot((child, twin)), [ran(child, twin)]))


def test_sides_that_disagree_are_flagged() -> None:
    child, twin = linked(1)
    twin["status"] = "ENDED_ERROR"
    assert any("status differs" in p for p in problems(snapshot((child, twin)), [ran(child, twin)]))


def test_a_received_execution_without_a_counterpart_is_flagged() -> None:
    good = linked(1)
    _, stray = linked(2)
    snap = snapshot(good)
    snap.edge[stray["id"]] = stray
    assert any("no counterpart" in p for p in problems(snap, [ran(*good)]))


def test_a_child_received_twice_is_flagged() -> None:
    child, twin = linked(1)
    again = {**twin, "id": str(uuid.uuid4())}
    snap = snapshot((child, twin))
    snap.edge[again["id"]] = again
    assert any("received 2 times" in p for p in problems(snap, [ran(child, twin)]))


@pytest.mark.parametrize("marks", [0, 1])
def test_a_restart_error_passes_only_where_that_side_restarted(marks: int) -> None:
    interrupted = linked(1, "ENDED_ERROR", RESTART_MESSAGE)
    markers = [ran(*interrupted)] * marks
    assert problems(snapshot(interrupted), markers, {"edge"}) == []
    assert any("ENDED_ERROR" in p for p in problems(snapshot(interrupted), markers, {"hub"}))


def test_a_run_of_an_execution_cancelled_before_it_started_is_flagged() -> None:
    cancelled = linked(1, "ENDED_CANCELLED", "cancelled before it started")
    assert problems(snapshot(cancelled), []) == []
    assert any("yet it ran" in p for p in problems(snapshot(cancelled), [ran(*cancelled)]))


def test_unended_and_disagreeing_executions_are_not_converged() -> None:
    running = linked(1, "RUNNING")
    child, twin = linked(2)
    twin["status"] = "RUNNING"
    assert len(unconverged(snapshot(running, (child, twin)))) == 4


def test_a_final_status_that_changes_is_an_end_twice() -> None:
    good = linked(1)
    before = snapshot(good)
    after = snapshot(({**good[0], "status": "ENDED_ERROR"}, good[1]))
    assert any("ended twice" in p for p in changed_after_end(before, after))
