"""A short coverage-guided fuzz run of the envelope verifier and parser (tests/fuzz/fuzz_envelope.py).

Runs only where atheris is installed (`pip install atheris`); its length scales with
TETHER_TEST_FUZZ_S. A crash fails the test with libFuzzer's report and keeps the input.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).parents[1] / "fuzz" / "fuzz_envelope.py"
SECONDS = int(os.environ.get("TETHER_TEST_FUZZ_S", "8"))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed: `pip install atheris` to fuzz the envelope parser",
)


def test_the_envelope_parser_survives_a_coverage_guided_fuzz_run(tmp_path: Path) -> None:
    """libFuzzer ends the run after SECONDS with "Done", or stops at the first crash."""
    command = [
        sys.executable,
        str(TARGET),
        f"-max_total_time={SECONDS}",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=SECONDS + 60, cwd=tmp_path, check=False
    )
    report = run.stderr[-6000:]
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "oom-")))
    assert run.returncode == 0 and not crashes, f"{crashes}\n{report}"
    assert "Done " in run.stderr, report
    runs = int(run.stderr.split("Done ", 1)[1].split()[0])
    assert runs > 1000, report
