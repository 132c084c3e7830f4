"""Waiting for something that happens elsewhere (a child process, a server, a linked workspace).

The one polling loop of the tests: a test states what it waits for and how long it may take,
never how long to sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")

POLL_S = 0.02


def wait_until(
    check: Callable[[], T | Literal[False] | None],
    what: str,
    timeout_s: float = 30.0,
    poll_s: float = POLL_S,
) -> T:
    """The first truthy value of ``check()``, which is polled until then; fails the test after ``timeout_s``.

    ``check`` may also say "not yet" by failing an assertion: the last such failure is shown
    when the time is up, so a check that asserts on the state it read explains the timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value: T | Literal[False] | None
        try:
            value = check()
        except AssertionError as not_yet:
            value, last = None, f": {not_yet}"
        else:
            last = f"; the last check gave {value!r}"
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}{last}")
        time.sleep(poll_s)
