"""Processes seen from outside, through /proc and ps: which are gone, which descend from which."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.waiting import wait_until


def is_gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_all_gone(pids: set[int], timeout_s: float = 10.0) -> None:
    """Wait until every one of ``pids`` is gone; fails the test naming those still running."""

    def all_gone() -> bool:
        alive = {p for p in pids if not is_gone(p)}
        assert not alive, f"still running: {sorted(alive)}"
        return True

    wait_until(all_gone, "every process to be gone", timeout_s)


def descendants(pid: int) -> set[int]:
    """Every process whose parent chain leads to ``pid``."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        listing = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True
        ).stdout
        children = {int(p) for p in listing.split()}
        frontier.extend(children - found)
        found |= children
    return found
