"""How pages write times and durations: one format everywhere, UTC in the page, local in the browser.

Pure functions for the templates; the script turns each <time> into the reader's local time.
"""

from __future__ import annotations

import datetime
from typing import Protocol

Moment = float | str | None  # Unix seconds, or ISO 8601 as the API's answers carry it


class Timed(Protocol):
    started_at: float | None
    ended_at: float | None


def epoch(value: Moment) -> float | None:
    """``value`` as Unix seconds (ISO 8601 strings are parsed), or None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value).timestamp()
    return float(value)


def _utc(value: Moment) -> datetime.datetime | None:
    seconds = epoch(value)
    return None if seconds is None else datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)


def when(value: Moment) -> str:
    """A time as 'YYYY-MM-DD HH:MM:SS' in UTC (whole seconds), or an empty string."""
    moment = _utc(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def iso(value: Moment) -> str:
    """A time as ISO 8601 in UTC without fractions, for a <time datetime="..."> attribute."""
    moment = _utc(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def span(seconds: float | None) -> str:
    """A duration for people: '0.4 s', '12 s', '4 min 05 s', '2 h 03 min', '3 d 4 h'."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def elapsed(item: Timed, now: float) -> float | None:
    """How long ``item`` ran: until it ended, or until ``now`` while it runs; None before it starts."""
    if item.started_at is None:
        return None
    return (item.ended_at if item.ended_at is not None else now) - item.started_at
