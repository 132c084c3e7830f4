"""tether.malloc caps glibc's arenas in the process that calls it (tether serve, worker)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tune_caps_the_arenas_on_glibc() -> None:
    # In a process of its own: the cap is for the whole process, and must not change the
    # test runner's allocator under the other tests.
    program = "from tether import malloc; print(malloc.tune())"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
