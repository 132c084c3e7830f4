"""The duration chart's geometry: oldest on the left, scaled to the longest, only ended executions."""

from __future__ import annotations

import dataclasses

from tether.statuses import Status
from tether.store import executions
from tether.web.pages import charts

BASE = executions.Execution(
    id="x",
    name="n",
    flow_name="f",
    status=Status.ENDED_SUCCESS,
    script="",
    script_sha256="",
    input_value={},
    output_value={},
    message=None,
    parent_id=None,
    origin=executions.LOCAL,
    sync_config=None,
    remote_execution_id=None,
    is_cancel_requested=False,
    max_runtime_s=None,
    worker=None,
    owner="admin",
    log_count=0,
    log_synced=0,
    created_at=100.0,
    started_at=100.0,
    ended_at=None,
)


def ran(
    execution_id: str, seconds: float | None, status: str = Status.ENDED_SUCCESS
) -> executions.Execution:
    ended = None if seconds is None else 100.0 + seconds
    return dataclasses.replace(BASE, id=execution_id, status=status, ended_at=ended)


def test_bars_run_oldest_to_newest_and_the_longest_fills_the_height() -> None:
    newest_first = [ran("c", 1.0), ran("b", 4.0, Status.ENDED_ERROR), ran("a", 2.0)]
    bars = charts.duration_bars(newest_first)
    assert [b.execution_id for b in bars] == ["a", "b", "c"]
    assert [b.height for b in bars] == [charts.HEIGHT / 2, charts.HEIGHT, charts.HEIGHT / 4]
    assert all(b.y + b.height == charts.HEIGHT for b in bars)  # standing on the axis
    assert bars[1].status == "ended_error" and "4.0 s" in bars[1].title
    assert bars[-1].x + bars[-1].width <= charts.WIDTH


def test_running_and_never_started_executions_have_no_bar() -> None:
    never = dataclasses.replace(ran("p", None, Status.PENDING), started_at=None)
    assert charts.duration_bars([ran("r", None, Status.RUNNING), never]) == []


def test_an_instant_execution_still_shows_as_a_sliver() -> None:
    bars = charts.duration_bars([ran("slow", 10.0), ran("instant", 0.0)])
    assert min(b.height for b in bars) == 1.0


def test_a_few_bars_keep_a_bar_width_and_the_newest_stands_at_the_right_edge() -> None:
    bars = charts.duration_bars([ran("b", 2.0), ran("a", 1.0)])
    assert all(b.width <= charts.WIDTH / charts.MIN_SLOTS for b in bars)
    newest = bars[-1]
    assert newest.execution_id == "b"
    assert newest.x == round(charts.WIDTH - charts.WIDTH / charts.MIN_SLOTS, 2)
