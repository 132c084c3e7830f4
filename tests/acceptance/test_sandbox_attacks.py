"""A user with role `user` attacks the workspace from inside a flow, and every attempt fails.

Each workspace is a real `tether serve` on SQLite, or on a PostgreSQL server that asks for a
password. The same attacks run once more against a workspace started with `--sandbox off`,
where they must succeed: so the attack tests cannot pass because an attack was written wrong.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import private_postgres
from tests.support.workspace import ApiClient, ServedWorkspace

MALLORY, MALLORY_PASSWORD = "mallory", "mallory-password"
LINK_ACCOUNT = {"tether-link": "user"}  # built in: the account received executions run as

VICTIM = """\
import os
import time


def handler(system, this):
    system.setting("victim").save(value={"pid": os.getpid(), "id": this.get("id")})
    while not system.setting("attack_done").exists():
        time.sleep(0.02)
"""

# Each attempt is recorded as "succeeded: ..." or "failed: ..."; the flow goes on regardless.
ATTACKER = r'''
import ctypes
import os
import signal
import sqlite3
import subprocess
import tempfile
import urllib.request

import flow_api

libc = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_GETFD = 438


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def attempt(results, name, action):
    try:
        results[name] = "succeeded: " + repr(action())[:200]
    except Exception as exc:
        results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]


def read(path, size=64):
    with open(path, "rb") as handle:
        return handle.read(size)


def open_fds_of(pid):
    """Open what the process has open (its store, say) through /proc/PID/fd."""
    opened = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            with open(f"/proc/{pid}/fd/{fd}", "rb"):
                opened.append(fd)
        except OSError as exc:
            error = exc
    if not opened:
        raise error
    return opened


def memory_of(pid):
    """Read the process's memory as a debugger would: the right to ptrace it is checked."""
    with open(f"/proc/{pid}/maps") as maps:
        start = int(maps.readline().split("-")[0], 16)
    buffer = ctypes.create_string_buffer(16)
    local = IoVec(ctypes.cast(buffer, ctypes.c_void_p), 16)
    remote = IoVec(start, 16)
    if libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return buffer.raw


def channel_of(pid):
    pidfd = os.pidfd_open(pid)
    try:
        fds = [int(fd) for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        fds = [3]  # where a confined child's channel lives
    for fd in fds:
        stolen = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if stolen >= 0 and "socket" in os.readlink(f"/proc/self/fd/{stolen}"):
            return f"fd {fd} of execution {pid}"
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def database_url(server):
    found = os.environ.get("TETHER_DATABASE_URL")
    for source in (f"/proc/{server}/environ", f"/proc/{server}/cmdline"):
        if not found:
            with open(source, "rb") as handle:
                for item in handle.read().split(b"\0"):
                    if item.startswith((b"TETHER_DATABASE_URL=", b"postgresql")):
                        found = item.decode().split("=", 1)[-1]
    if not found:
        raise LookupError("the server's database URL is nowhere to be found")
    return found


def promote_in_postgres(server):
    import psycopg

    url = database_url(server)
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("UPDATE \"user\" SET role = 'organization_admin' WHERE name = 'mallory'")
    return "promoted"


def promote_in_sqlite(path):
    conn = sqlite3.connect(path, timeout=5)
    with conn:
        conn.execute("UPDATE user SET role = 'organization_admin' WHERE name = 'mallory'")
    conn.close()
    return "promoted"


def handler(system, this, inputs):
    server, fork_server = inputs["server_pid"], os.getppid()
    victim = system.setting("victim").get("value")
    results = {"environment": dict(os.environ)}
    attempt(results, "server environ", lambda: read(f"/proc/{server}/environ"))
    attempt(results, "server fds", lambda: open_fds_of(server))
    attempt(results, "server mem", lambda: read(f"/proc/{server}/mem", 0))
    attempt(results, "fork server environ", lambda: read(f"/proc/{fork_server}/environ"))
    attempt(results, "secret file", lambda: read(inputs["secret_file"]))
    for path in inputs["database_files"]:
        attempt(results, f"read {os.path.basename(path)}", lambda: read(path))
    planted = os.path.join(inputs["data_dir"], "planted")
    attempt(results, "write data dir", lambda: open(planted, "w").write("x"))
    attempt(results, "signal server", lambda: os.kill(server, signal.SIGCONT))
    attempt(results, "signal fork server", lambda: os.kill(fork_server, signal.SIGCONT))
    attempt(results, "ptrace server", lambda: memory_of(server))
    attempt(results, "ptrace fork server", lambda: memory_of(fork_server))
    attempt(results, "signal other execution", lambda: os.kill(victim["pid"], signal.SIGCONT))
    attempt(results, "other execution's channel", lambda: channel_of(victim["pid"]))
    if inputs["database_files"]:
        attempt(results, "promote in database", lambda: promote_in_sqlite(inputs["database_files"][0]))
    else:
        attempt(results, "promote in database", lambda: promote_in_postgres(server))
    try:
        system.execution(victim["id"]).save(output_value={"forged": True})
        results["save another execution"] = "succeeded"
    except flow_api.PermissionDenied as exc:
        results["save another execution"] = f"failed: {exc}"
    system.setting("attack_done").save(value=True)
    # ... and the flow goes on: programs, temporary files, the network, flow_api.
    with tempfile.NamedTemporaryFile("w", delete=False) as scratch:
        scratch.write("kept")
    results["program"] = subprocess.run(["cat", scratch.name], capture_output=True, text=True).stdout
    with urllib.request.urlopen(inputs["health_url"], timeout=10) as answer:
        results["network"] = answer.status
    this.save(output_value=results)
'''

ATTEMPTS = (
    "server environ",
    "server fds",
    "server mem",
    "fork server environ",
    "secret file",
    "write data dir",
    "signal server",
    "signal fork server",
    "ptrace server",
    "ptrace fork server",
    "signal other execution",
    "other execution's channel",
    "promote in database",
)
# What the control (--sandbox off) shows an unconfined flow doing: the attacks are real.
SHOWN_BY_THE_CONTROL = (
    "server environ",
    "server fds",
    "secret file",
    "write data dir",
    "signal server",
    "ptrace fork server",
    "other execution's channel",
    "promote in database",
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite in the data directory; else a PostgreSQL URL with a password."""
    if request.param == "sqlite":
        yield None
        return
    reason = private_postgres.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with private_postgres.password_postgres() as url:
        yield url


@contextlib.contextmanager
def workspace(database: str | None, sandbox: str) -> Iterator[ServedWorkspace]:
    root = Path(tempfile.mkdtemp(prefix="tether-attack-"))
    # The database URL travels in the environment, never on the command line (which every
    # process may read in /proc): as the operator's guide advises.
    env = {"TETHER_SANDBOX": sandbox}
    if database is not None:
        env["TETHER_DATABASE_URL"] = database
    served = ServedWorkspace(f"attacked-{sandbox}", root / "data", env=env)
    try:
        yield served.start()
    finally:
        served.stop()
        shutil.rmtree(root, ignore_errors=True)
        if database is not None:
            _empty(database)


def _empty(url: str) -> None:
    """Drop the workspace's tables so that the next workspace on this server starts afresh."""
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()


@dataclass
class Aftermath:
    """What the attacker's flow reported, and the workspace's users and links afterwards."""

    results: dict[str, Any]
    roles: dict[str, str]
    sync_configs: list[Any]


def attack(served: ServedWorkspace, database: str | None) -> Aftermath:
    """Run the attacker's flow as role `user` beside another user's execution."""
    admin = served.client()
    mallory_http = httpx.Client(base_url=served.api_url, timeout=30)
    try:
        admin.ok(
            "POST", "/user", json={"name": MALLORY, "password": MALLORY_PASSWORD, "role": "user"}
        )
        admin.create_flow("victim", VICTIM)
        victim = admin.start("victim")
        admin.wait_setting("victim")
        mallory = ApiClient.login(mallory_http, MALLORY, MALLORY_PASSWORD)
        mallory.create_flow("attacker", ATTACKER)
        ended = mallory.run("attacker", input_value=_inputs(served, database))
        assert ended["status"] == "ENDED_SUCCESS", ended["message"]
        assert admin.wait_ended(victim["id"])["status"] == "ENDED_SUCCESS"
        roles = {user["name"]: user["role"] for user in admin.ok("GET", "/user")}
        return Aftermath(ended["output_value"], roles, admin.ok("GET", "/sync_config"))
    finally:
        mallory_http.close()
        admin.client.close()


def _inputs(served: ServedWorkspace, database: str | None) -> dict[str, Any]:
    """Where the server keeps what the attacker is after (it could read them off /proc)."""
    assert served.process is not None
    database_files = [] if database else [str(served.data_dir / "tether.sqlite3")]
    return {
        "server_pid": served.process.pid,
        "secret_file": str(served.data_dir / "secret.key"),
        "data_dir": str(served.data_dir),
        "database_files": database_files + [f + "-wal" for f in database_files],
        "health_url": served.api_url + "/health",
    }


def test_every_attack_of_a_user_flow_fails_in_the_sandbox(database: str | None) -> None:
    with workspace(database, "on") as served:
        aftermath = attack(served, database)
        results = aftermath.results
        failed = {name: results[name] for name in ATTEMPTS if name in results}
        succeeded = [name for name, outcome in failed.items() if not outcome.startswith("failed")]
        assert not succeeded, {name: results[name] for name in succeeded}
        for name in ("read tether.sqlite3", "read tether.sqlite3-wal"):
            if name in results:
                assert results[name].startswith("failed"), results[name]
        assert results["save another execution"].startswith("failed"), results
        environment = results["environment"]
        assert not [k for k in environment if k.startswith("TETHER_")], environment
        assert not any("admin-password" in v or "postgresql" in v for v in environment.values())
        assert environment["HOME"] == environment["TMPDIR"], environment
        # ... while the flow itself went on.
        assert results["program"] == "kept" and results["network"] == 200, results
        assert aftermath.roles == {"admin": "organization_admin", MALLORY: "user", **LINK_ACCOUNT}
        assert aftermath.sync_configs == []
        assert not (served.data_dir / "planted").exists()


def test_the_same_attacks_succeed_with_the_sandbox_off(database: str | None) -> None:
    """The control: without the sandbox, the flow has the server's powers."""
    with workspace(database, "off") as served:
        aftermath = attack(served, database)
        results = aftermath.results
        database_reads = [name for name in results if name.startswith("read tether.sqlite3")]
        assert len(database_reads) == (0 if database else 2)
        shown = [*SHOWN_BY_THE_CONTROL, *database_reads]
        failed = [name for name in shown if not results[name].startswith("succ")]
        assert not failed, {name: results[name] for name in failed}
        assert "TETHER_ADMIN_PASSWORD" in results["environment"]
        assert aftermath.roles[MALLORY] == "organization_admin"
        assert (served.data_dir / "planted").exists()
