"""The runner takes the hard limit of open files: each running execution holds three here."""

from __future__ import annotations

import resource
import subprocess
import sys

PROBE = """
import resource
from tether.runner import runner
print(runner.raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def lowered_soft_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def probe() -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        preexec_fn=lowered_soft_limit,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    returned, seen = done.stdout.split()
    return int(returned), int(seen)


def test_a_low_soft_limit_of_open_files_is_raised_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    returned, seen = probe()
    expected = 1024 * 1024 if hard == resource.RLIM_INFINITY else hard
    assert hard == resource.RLIM_INFINITY or hard > 256, "the control needs a hard limit above 256"
    assert (returned, seen) == (expected, expected)
