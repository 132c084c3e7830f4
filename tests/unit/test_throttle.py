"""The login throttle's window: failures age out, limits are per key, and keys are bounded."""

from __future__ import annotations

import pytest

from tether import errors
from tether.actions import throttle
from tether.actions.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_holds_until_the_oldest_counted_failure_is_a_window_old() -> None:
    clock = Clock()
    gate = LoginThrottle(clock)
    for _ in range(throttle.MAX_FAILURES_PER_USER):
        gate.check("admin", "a")
        gate.record_failure("admin", "a")
        clock.now += 10
    with pytest.raises(errors.TooManyLogins) as refused:
        gate.check("admin", "b")  # another address: the user name is held
    assert refused.value.fields["retry_after_s"] == 10  # the first failure was 50 s ago
    gate.check("bob", "b")
    clock.now += 10
    gate.check("admin", "b")  # the first failure aged out
    gate.record_failure("admin", "b")
    with pytest.raises(errors.TooManyLogins):
        gate.check("admin", "c")


def test_a_good_login_clears_the_user_count_but_not_the_address_count() -> None:
    gate = LoginThrottle(Clock())
    for number in range(throttle.MAX_FAILURES_PER_ADDRESS):
        gate.record_failure(f"user-{number % 2}", "a")
    gate.record_success("user-0")
    gate.check("user-0", "b")
    with pytest.raises(errors.TooManyLogins) as refused:
        gate.check("someone", "a")
    assert "from this address" in refused.value.message


def test_the_counts_forget_the_oldest_key_past_their_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(throttle, "MAX_KEYS", 3)
    counts = throttle.FailureCounts(throttle.Rule("for this user name", 1))
    for name in ("a", "b", "c", "d"):
        counts.add(name, 1.0)
    assert counts.wait_s("a", 1.0) == 0  # forgotten
    assert counts.wait_s("d", 1.0) == throttle.WINDOW_S
