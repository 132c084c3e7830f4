"""Scripts that crash, hang or overrun: each ends with a clear status and message, and the
workspace keeps serving; cancellation really stops processes; the concurrency limit holds."""

from __future__ import annotations

import datetime
import textwrap
import time
from collections.abc import Callable

import pytest

from tests.support.processes import is_gone
from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient

GATED = """
def handler(system, this):
    while not system.setting('go').exists():
        this.sleep(0.02)
"""


QUICK = "def handler(system, this):\n    this.set_output('ok', True)\n"


def flow(api: ApiClient, name: str, script: str) -> None:
    api.create_flow(name, textwrap.dedent(script))


def wait_gone(pid: int, timeout_s: float = 5.0) -> None:
    wait_until(lambda: is_gone(pid), f"process {pid} to be gone", timeout_s)


def assert_still_serves(api: ApiClient) -> None:
    """The workspace still runs executions after whatever the test did."""
    if api.get("/flow/quick").status_code == 404:
        api.create_flow("quick", QUICK)
    record = api.run("quick")
    assert record["status"] == "ENDED_SUCCESS", record
    assert record["output_value"] == {"ok": True}


# --- crashes ----------------------------------------------------------------------------


def test_os_exit_ends_with_error_naming_the_exit_code(api: ApiClient) -> None:
    flow(api, "exits", "import os\n\ndef handler(system, this):\n    os._exit(3)\n")
    record = api.run("exits")
    assert record["status"] == "ENDED_ERROR"
    assert "code 3" in record["message"]
    assert_still_serves(api)


def test_segfault_ends_with_error_naming_sigsegv(api: ApiClient) -> None:
    flow(
        api,
        "segfaults",
        "import ctypes\n\ndef handler(system, this):\n    ctypes.string_at(0)\n",
    )
    record = api.run("segfaults")
    assert record["status"] == "ENDED_ERROR"
    assert "SIGSEGV" in record["message"]
    assert_still_serves(api)


def test_raised_memory_error_ends_with_error_saying_memory(api: ApiClient) -> None:
    flow(api, "raises", "def handler(system, this):\n    raise MemoryError\n")
    record = api.run("raises")
    assert record["status"] == "ENDED_ERROR"
    assert "memory" in record["message"].lower()
    assert_still_serves(api)


def test_real_allocation_beyond_the_address_space_limit_ends_saying_memory(
    api: ApiClient,
) -> None:
    flow(
        api,
        "hungry",
        """
        import resource

        def handler(system, this):
            with open('/proc/self/status') as status:
                kib = next(int(l.split()[1]) for l in status if l.startswith('VmSize:'))
            limit = kib * 1024 + 64 * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            hog = bytearray(1024 * 1024 * 1024)
            this.set_output('allocated', len(hog))
        """,
    )
    record = api.run("hungry")
    assert record["status"] == "ENDED_ERROR", record
    assert "memory" in record["message"].lower()
    assert "allocated" not in record["output_value"]
    assert_still_serves(api)


# --- maximum runtime --------------------------------------------------------------------


def test_max_runtime_stops_a_busy_loop_with_error(api: ApiClient) -> None:
    flow(api, "spins", "def handler(system, this):\n    while True:\n        pass\n")
    started = time.monotonic()
    record = api.run("spins", max_runtime_s=0.5)
    assert record["status"] == "ENDED_ERROR"
    assert "maximum runtime" in record["message"]
    assert "0.5" in record["message"]
    assert time.monotonic() - started < 10
    assert_still_serves(api)


def test_max_runtime_stops_a_parent_waiting_on_a_child_that_never_ends(api: ApiClient) -> None:
    flow(api, "gated", GATED)
    flow(api, "parent", "def handler(system, this):\n    this.flow('gated')\n")
    started = time.monotonic()
    record = api.run("parent", max_runtime_s=0.5)
    assert record["status"] == "ENDED_ERROR"
    assert "maximum runtime" in record["message"]
    assert time.monotonic() - started < 10


def test_max_runtime_leaves_a_quick_execution_alone(api: ApiClient) -> None:
    api.create_flow("quick", QUICK)
    record = api.run("quick", max_runtime_s=5)
    assert record["status"] == "ENDED_SUCCESS"


# --- cancel ---------------------------------------------------------------------------------

PID_THEN_SPIN = """
import os

def handler(system, this):
    system.setting('pid').save(value=os.getpid())
    while True:
        pass
"""

PID_THEN_REFUSE_TO_STOP = """
import os

def handler(system, this):
    system.setting('pid').save(value=os.getpid())
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
"""


def test_cancel_stops_a_busy_loop_at_once_and_its_process_is_gone(api: ApiClient) -> None:
    flow(api, "spins", PID_THEN_SPIN)
    execution = api.start("spins")
    pid = api.wait_setting("pid")
    api.ok("POST", f"/execution/{execution['id']}/cancel")
    record = api.wait_ended(execution["id"])
    assert record["status"] == "ENDED_CANCELLED"
    assert record["message"] == "cancelled"  # the signal stopped it: no kill was needed
    wait_gone(pid)
    assert_still_serves(api)


def test_cancel_kills_a_script_that_swallows_the_signal_after_the_grace_period(
    api: ApiClient,
) -> None:
    flow(api, "stubborn", PID_THEN_REFUSE_TO_STOP)
    execution = api.start("stubborn")
    pid = api.wait_setting("pid")
    started = time.monotonic()
    api.ok("POST", f"/execution/{execution['id']}/cancel")
    record = api.wait_ended(execution["id"])
    elapsed = time.monotonic() - started
    assert record["status"] == "ENDED_CANCELLED"
    assert "killed" in record["message"]
    assert 1.0 <= elapsed < 10  # the fixture's grace period is 1 s
    wait_gone(pid)
    assert_still_serves(api)


def test_cancel_kills_processes_the_script_started(api: ApiClient) -> None:
    flow(
        api,
        "spawner",
        """
        import subprocess

        def handler(system, this):
            helper = subprocess.Popen(['sleep', '60'])
            system.setting('pid').save(value=helper.pid)
            while True:
                this.sleep(0.05)
        """,
    )
    execution = api.start("spawner")
    helper_pid = api.wait_setting("pid")
    assert not is_gone(helper_pid)
    api.ok("POST", f"/execution/{execution['id']}/cancel")
    assert api.wait_ended(execution["id"])["status"] == "ENDED_CANCELLED"
    wait_gone(helper_pid)


def test_cancelling_a_parent_cancels_its_running_child(api: ApiClient) -> None:
    flow(api, "spins", PID_THEN_SPIN)
    flow(api, "parent", "def handler(system, this):\n    this.flow('spins')\n")
    parent = api.start("parent")
    child_pid = api.wait_setting("pid")
    [child] = api.ok("GET", "/execution", params={"parent_id": parent["id"]})
    assert child["status"] == "RUNNING"
    api.ok("POST", f"/execution/{parent['id']}/cancel")
    assert api.wait_ended(parent["id"])["status"] == "ENDED_CANCELLED"
    assert api.wait_ended(child["id"])["status"] == "ENDED_CANCELLED"
    wait_gone(child_pid)
    assert_still_serves(api)


def test_cancel_of_a_queued_execution_ends_it_before_it_starts(
    api_with: Callable[..., ApiClient],
) -> None:
    api = api_with(max_running=1)
    flow(api, "spins", PID_THEN_SPIN)
    first = api.start("spins")
    api.wait_setting("pid")
    second = api.start("spins")
    assert api.ok("GET", f"/execution/{second['id']}")["status"] == "QUEUED"
    api.ok("POST", f"/execution/{second['id']}/cancel")
    record = api.ok("GET", f"/execution/{second['id']}")
    assert record["status"] == "ENDED_CANCELLED"
    assert record["started_at"] is None
    api.ok("POST", f"/execution/{first['id']}/cancel")
    assert api.wait_ended(first["id"])["status"] == "ENDED_CANCELLED"


def test_cancel_of_an_ended_execution_changes_nothing(api: ApiClient) -> None:
    api.create_flow("quick", QUICK)
    record = api.run("quick")
    after = api.ok("POST", f"/execution/{record['id']}/cancel")
    assert after["status"] == "ENDED_SUCCESS"
    assert api.ok("GET", f"/execution/{record['id']}")["status"] == "ENDED_SUCCESS"


# --- concurrency limit ----------------------------------------------------------------------


def statuses(api: ApiClient, ids: list[str]) -> list[str]:
    return [api.ok("GET", f"/execution/{i}")["status"] for i in ids]


def max_overlap(records: list[dict[str, str]]) -> int:
    """The largest number of executions whose started..ended intervals overlap."""

    def at(text: str) -> datetime.datetime:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))

    points = [(at(r["started_at"]), 1) for r in records]
    points += [(at(r["ended_at"]), -1) for r in records]
    running = peak = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_concurrency_limit_queues_executions_beyond_it(
    api_with: Callable[..., ApiClient],
) -> None:
    api = api_with(max_running=2)
    flow(api, "gated", GATED)
    ids = [api.start("gated")["id"] for _ in range(4)]

    def two_running() -> bool:
        now = statuses(api, ids)
        assert now.count("RUNNING") == 2, now
        return True

    wait_until(two_running, "two executions to run", 10)
    for _ in range(10):  # it stays that way while the two run
        assert sorted(statuses(api, ids)) == ["QUEUED", "QUEUED", "RUNNING", "RUNNING"]
        time.sleep(0.03)
    api.set_setting("go", True)
    records = [api.wait_ended(i) for i in ids]
    assert [r["status"] for r in records] == ["ENDED_SUCCESS"] * 4
    assert max_overlap(records) == 2


def test_a_parent_waiting_on_its_child_does_not_hold_a_slot(
    api_with: Callable[..., ApiClient],
) -> None:
    api = api_with(max_running=1)
    flow(api, "leaf", "def handler(system, this):\n    this.set_output('leaf', True)\n")
    flow(api, "middle", "def handler(system, this):\n    this.flow('leaf')\n")
    flow(
        api,
        "top",
        """
        def handler(system, this):
            child = this.flow('middle')
            this.set_output('middle', child.get('status'))
        """,
    )
    record = api.wait_ended(api.start("top")["id"], timeout_s=15)
    assert record["status"] == "ENDED_SUCCESS", record
    assert record["output_value"] == {"middle": "ENDED_SUCCESS"}


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_a_script_killed_by_a_signal_ends_with_error_naming_it(
    api: ApiClient, signal_name: str
) -> None:
    flow(
        api,
        "selfkill",
        f"""
        import os, signal

        def handler(system, this):
            os.kill(os.getpid(), signal.{signal_name})
            this.sleep(5)
        """,
    )
    record = api.run("selfkill")
    assert record["status"] == "ENDED_ERROR"
    assert signal_name in record["message"]
    assert_still_serves(api)


def test_many_crashes_in_a_row_leave_the_workspace_serving(api: ApiClient) -> None:
    flow(
        api, "exits", "import os\n\ndef handler(system, this):\n    os._exit(os.getpid() % 7 + 1)\n"
    )
    ids = [api.start("exits")["id"] for _ in range(6)]
    for execution_id in ids:
        record = api.wait_ended(execution_id)
        assert record["status"] == "ENDED_ERROR"
        assert "exited with code" in record["message"]
    assert_still_serves(api)


def test_a_script_that_kills_the_fork_server_leaves_the_workspace_serving(api: ApiClient) -> None:
    flow(
        api,
        "parricide",
        """
        import os, signal

        def handler(system, this):
            os.kill(os.getppid(), signal.SIGKILL)
            this.sleep(10)
        """,
    )
    record = api.run("parricide")
    assert record["status"] == "ENDED_ERROR"
    assert_still_serves(api)


def test_sys_exit_zero_succeeds_and_nonzero_fails_with_the_code(api: ApiClient) -> None:
    api.create_flow(
        "exit0",
        "import sys\ndef handler(system, this):\n    this.save(message='bye')\n    sys.exit(0)\n",
    )
    api.create_flow("exit7", "import sys\ndef handler(system, this):\n    sys.exit(7)\n")
    ok = api.run("exit0")
    failed = api.run("exit7")
    assert (ok["status"], ok["message"]) == ("ENDED_SUCCESS", "bye")
    assert failed["status"] == "ENDED_ERROR"
    assert "sys.exit(7)" in failed["message"]
