"""The tests' one polling loop: it returns what the check found, and a timeout says what and why."""

from __future__ import annotations

import itertools

import pytest

from tests.support.waiting import wait_until


def test_wait_until_returns_the_first_truthy_value_of_the_check() -> None:
    answers = iter([None, 0, "", {"id": 7}, {"id": 8}])
    assert wait_until(lambda: next(answers), "a record", poll_s=0) == {"id": 7}


def test_a_failed_assertion_in_the_check_means_not_yet() -> None:
    calls = itertools.count(1)

    def third_time_lucky() -> int:
        call = next(calls)
        assert call >= 3, f"only call {call}"
        return call

    assert wait_until(third_time_lucky, "the third call", poll_s=0) == 3


def test_a_timeout_names_what_was_awaited_and_the_last_failed_assertion() -> None:
    def never() -> bool:
        raise AssertionError("status is QUEUED")

    with pytest.raises(AssertionError, match=r"waiting for the run to end: status is QUEUED"):
        wait_until(never, "the run to end", timeout_s=0.05, poll_s=0.01)


def test_a_timeout_shows_the_last_falsy_value() -> None:
    with pytest.raises(AssertionError, match=r"waiting for a list; the last check gave \[\]"):
        wait_until(list, "a list", timeout_s=0.05, poll_s=0.01)


def test_an_error_other_than_an_assertion_fails_at_once() -> None:
    calls = itertools.count(1)

    def broken() -> bool:
        next(calls)
        raise KeyError("status")

    with pytest.raises(KeyError):
        wait_until(broken, "a broken check", timeout_s=30)
    assert next(calls) == 2  # called once
