"""How pages write times and durations: whole seconds, UTC in the page, words for spans."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tether.web.pages import times

NOON = 1_767_268_800.987654  # 2026-01-01 12:00:00.987654 UTC


def test_a_time_is_written_in_utc_without_fractions() -> None:
    assert times.when(NOON) == "2026-01-01 12:00:00"
    assert times.iso(NOON) == "2026-01-01T12:00:00Z"


def test_an_iso_time_from_the_api_reads_the_same_as_unix_seconds() -> None:
    assert times.when("2026-01-01T12:00:00.987654Z") == times.when(NOON)
    assert times.iso("2026-01-01T12:00:00.987654Z") == times.iso(NOON)


@pytest.mark.parametrize("value", [None, ""])
def test_no_time_is_written_as_nothing(value: str | None) -> None:
    assert times.when(value) == "" and times.iso(value) == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.04, "0.0 s"),
        (3.46, "3.5 s"),
        (42.9, "42 s"),
        (245, "4 min 05 s"),
        (7380, "2 h 03 min"),
        (3 * 86400 + 4 * 3600 + 5, "3 d 4 h"),
        (-1, "0.0 s"),  # clocks of two machines may disagree a little
    ],
)
def test_a_span_is_written_in_words_people_read(seconds: float, text: str) -> None:
    assert times.span(seconds) == text


@dataclass
class Ran:
    started_at: float | None
    ended_at: float | None


def test_elapsed_counts_to_the_end_or_to_now_and_is_none_before_the_start() -> None:
    assert times.elapsed(Ran(100.0, 130.5), now=500.0) == 30.5
    assert times.elapsed(Ran(100.0, None), now=160.0) == 60.0
    assert times.elapsed(Ran(None, None), now=160.0) is None
