"""A workspace whose data directory sits on a full volume: it keeps serving, refuses writes
with a clear 503, and once space returns it ends the execution that filled the disk and runs
new ones. And one execution cannot fill a volume on its own (--execution-log-mb).

The volume is a 24 MB tmpfs mounted for the test; mounting needs root (the test says so
and is skipped without it). SQLite only: the data directory is what fills; a PostgreSQL's
disk is its server's.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient, ServedWorkspace

VOLUME_MB = 24
FLOOD_MB = 40
FLOOD = """def handler(system, this, inputs):
    line = "d" * 3999
    for i in range(inputs["lines"]):
        print(line)
"""
QUICK = """def handler(system, this):
    this.save(output_value={"ran": True})
"""
FLOOD_LINES = FLOOD_MB * 1000 // 4


@pytest.fixture
def small_volume() -> Iterator[Path]:
    """A fresh 24 MB tmpfs, unmounted and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="tether-small-volume-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_MB}m,mode=0700", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        root.rmdir()
        pytest.skip(
            f"cannot mount a {VOLUME_MB} MB tmpfs for the full-disk test "
            f"({mounted.stderr.strip() or 'mount failed'}): run the tests as root to include it"
        )
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def serve_on(volume: Path, *args: str) -> Iterator[ApiClient]:
    """A workspace with its data directory on ``volume``, and a client logged in to it."""
    workspace = ServedWorkspace("full", volume / "data", extra_args=list(args))
    try:
        api = workspace.start().client()
        try:
            yield api
        finally:
            api.client.close()
    finally:
        workspace.stop()


@pytest.fixture
def api(small_volume: Path) -> Iterator[ApiClient]:
    yield from serve_on(small_volume)


@pytest.fixture
def capped_api(small_volume: Path) -> Iterator[ApiClient]:
    yield from serve_on(small_volume, "--execution-log-mb", "4")


def write_until_refused(api: ApiClient, timeout_s: float = 120.0) -> dict[str, str]:
    """Write a setting again and again until the workspace refuses; its answer."""
    attempts = itertools.count()

    def refused() -> dict[str, str] | None:
        answer = api.post("/setting", json={"name": "probe", "value": next(attempts)})
        if answer.is_success:
            return None
        if answer.status_code != 503:  # not an assert: wait_until takes those for "not yet"
            pytest.fail(f"a write was refused with {answer.status_code}, not 503: {answer.text}")
        body: dict[str, str] = answer.json()
        return body

    return wait_until(refused, "the volume to fill (a write refused)", timeout_s, poll_s=0.05)


def test_a_full_disk_stranded_the_execution_that_filled_it(
    small_volume: Path, api: ApiClient
) -> None:
    api.create_flow("flood", FLOOD)
    api.create_flow("quick", QUICK)
    ballast = small_volume / "ballast"  # the space that "returns" when it is deleted
    ballast.write_bytes(b"\0" * (8 * 1024 * 1024))
    flood = api.start("flood", input_value={"lines": FLOOD_LINES})

    refused = write_until_refused(api)
    assert refused["error"] == "store_full", refused
    assert "disk is full" in refused["message"] and "free" in refused["message"], refused
    # Still serving: health and reads answer.
    assert api.get("/execution/" + flood["id"]).status_code == 200
    assert api.client.get("/health").status_code == 200

    ballast.unlink()
    ended = api.wait_ended(flood["id"], timeout_s=60)
    assert ended["status"] == "ENDED_ERROR"
    assert "could not store its log" in ended["message"], ended["message"]
    assert "disk is full" in ended["message"], ended["message"]
    quick = api.run("quick")
    assert (quick["status"], quick["output_value"]) == ("ENDED_SUCCESS", {"ran": True})
    api.ok("POST", "/setting", json={"name": "probe", "value": "after"})


def test_one_execution_could_fill_the_disk_on_its_own(
    small_volume: Path, capped_api: ApiClient
) -> None:
    """With --execution-log-mb 4 the same flood keeps 4 MiB of log and the disk has room."""
    api = capped_api
    api.create_flow("flood", FLOOD)
    ended = api.wait_ended(api.start("flood", input_value={"lines": FLOOD_LINES})["id"], 120)
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    last = api.ok("GET", f"/execution/{ended['id']}/log", params={"offset": 1000, "limit": 100})
    assert last[-1]["message"].startswith("[log cut: this execution wrote more than 4 MiB")
    assert len(last) == 4 * 1024 * 1024 // 3999 - 1000 + 1  # the entries that fit, the marker
    api.ok("POST", "/setting", json={"name": "after", "value": True})
    assert shutil.disk_usage(small_volume).free > 8 * 1024 * 1024
    assert os.path.exists(small_volume / "data")
