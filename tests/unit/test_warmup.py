"""The fork server's warm-up runs the child's own path to the end and leaves nothing behind."""

from __future__ import annotations

import linecache
import sys
import threading

import pytest

from tether.runner import warmup


def test_every_pretend_execution_succeeds_and_the_process_is_as_before() -> None:
    streams = sys.stdout, sys.stderr
    threads = set(threading.enumerate())
    assert warmup.warm_up(rounds=3) == 3
    assert (sys.stdout, sys.stderr) == streams
    assert set(threading.enumerate()) == threads, "the pretend engine's thread has ended"
    assert warmup.FILENAME not in linecache.cache


def test_a_failing_path_is_counted_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: a warm-up whose script fails says so (the fork server then logs it).
    monkeypatch.setattr(warmup, "SCRIPT", "def handler(system, this, inputs):\n    1 / 0\n")
    assert warmup.warm_up(rounds=2) == 0
