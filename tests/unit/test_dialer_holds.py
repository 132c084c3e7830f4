"""The long-poll holds a dialer asks for: the first after a connect spreads links out."""

from __future__ import annotations

import random

from tether.link import dialer


def test_a_held_poll_is_followed_by_a_full_hold() -> None:
    assert dialer.next_hold_s(25.0, previous_s=25.0) == 25.0
    assert dialer.next_hold_s(25.0, previous_s=3.0) == 25.0


def test_first_holds_after_connecting_spread_over_the_whole_hold() -> None:
    """Links that connect together must not renew together: their first holds differ."""
    rng = random.Random(7)
    holds = [dialer.next_hold_s(25.0, previous_s=0.0, rng=rng) for _ in range(1000)]
    assert min(holds) >= 25.0 * dialer.FIRST_HOLD_MIN
    assert max(holds) <= 25.0
    quarters = [sum(1 for h in holds if q * 6.25 <= h < (q + 1) * 6.25) for q in range(4)]
    assert all(count > 150 for count in quarters), quarters
