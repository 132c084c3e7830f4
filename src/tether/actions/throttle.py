"""Login throttling: failed logins counted per user name and per client address, in memory.

Refused attempts are answered before any password is checked, so a flood costs no scrypt.
The counts live in this process only: each server of a workspace throttles on its own.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tether import errors

WINDOW_S = 60.0
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
# Keys come from outside (any user name, any address): past this many the oldest go.
MAX_KEYS = 10_000


@dataclass(frozen=True)
class Rule:
    """At most ``limit`` failures per key in any ``WINDOW_S`` seconds."""

    scope: str
    limit: int


PER_USER = Rule("for this user name", MAX_FAILURES_PER_USER)
PER_ADDRESS = Rule("from this address", MAX_FAILURES_PER_ADDRESS)


class FailureCounts:
    """The times of recent failures for each key of one rule."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._failures: dict[str, collections.deque[float]] = {}

    def wait_s(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        times = self._recent(key, now)
        if len(times) < self.rule.limit:
            return 0.0
        return times[-self.rule.limit] + WINDOW_S - now

    def add(self, key: str, now: float) -> None:
        """Count one failure of ``key`` at ``now``."""
        times = self._recent(key, now)
        times.append(now)
        self._failures[key] = times
        if len(self._failures) > MAX_KEYS:
            del self._failures[next(iter(self._failures))]

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        times = self._failures.get(key, collections.deque())
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times


class LoginThrottle:
    """Refuses logins of a user name or from an address with too many recent failures."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._per_user = FailureCounts(PER_USER)
        self._per_address = FailureCounts(PER_ADDRESS)

    def check(self, user_name: str, address: str) -> None:
        """Raise TooManyLogins while either count is at its limit."""
        with self._lock:
            now = self._clock()
            for counts, key in ((self._per_user, user_name), (self._per_address, address)):
                wait_s = counts.wait_s(key, now)
                if wait_s > 0:
                    raise errors.TooManyLogins(
                        scope=counts.rule.scope, retry_after_s=max(1, math.ceil(wait_s))
                    )

    def record_failure(self, user_name: str, address: str) -> None:
        """Count a failed login against both the user name and the address."""
        with self._lock:
            now = self._clock()
            self._per_user.add(user_name, now)
            self._per_address.add(address, now)

    def record_success(self, user_name: str) -> None:
        """A good password clears the user name's count (not the address's: one's own
        account must not reset the count of guesses at others)."""
        with self._lock:
            self._per_user.forget(user_name)
