"""A small chart of execution durations drawn as inline SVG: no script, no library.

Pure geometry for the template; the stylesheet colours the bars by status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tether.store.executions import Execution
from tether.web.pages import times

WIDTH = 320
HEIGHT = 64
GAP = 2
MIN_SLOTS = 20  # a few bars stay bars, not blocks: they stand at the right, the newest last


@dataclass(frozen=True)
class Bar:
    """One ended execution: its bar's box, its status class and its hover text."""

    execution_id: str
    x: float
    y: float
    width: float
    height: float
    status: str
    title: str


def duration_bars(found: Sequence[Execution]) -> list[Bar]:
    """Bars of the ended executions in ``found`` (newest first), oldest on the left, scaled
    to the longest; an execution that never started has no bar. The newest stands at the
    right edge."""
    ended = [ex for ex in reversed(found) if ex.ended_at is not None and ex.started_at is not None]
    if not ended:
        return []
    spans = [(ex.ended_at or 0) - (ex.started_at or 0) for ex in ended]
    longest = max(max(spans), 0.001)
    slots = max(len(ended), MIN_SLOTS)
    width = WIDTH / slots
    first = slots - len(ended)
    bars = []
    for index, (ex, seconds) in enumerate(zip(ended, spans, strict=True)):
        height = max(1.0, HEIGHT * max(seconds, 0.0) / longest)
        bars.append(
            Bar(
                execution_id=ex.id,
                x=round((first + index) * width, 2),
                y=round(HEIGHT - height, 2),
                width=round(max(width - GAP, 1.0), 2),
                height=round(height, 2),
                status=ex.status.lower(),
                title=f"{ex.name}: {ex.status}, {times.span(seconds)}, started {times.when(ex.started_at)} UTC",
            )
        )
    return bars
