"""Scale-out on one PostgreSQL: executions per second with one and with two `tether worker`
processes behind a `tether serve --no-runner`, how long a killed worker's execution takes
to end, and how long a link dialed by a killed server takes to be dialed by another.

Needs a PostgreSQL URL (TETHER_BENCH_DATABASE_URL, else TETHER_TEST_DATABASE_URL) whose
account may create databases; each measurement runs in a fresh database, dropped after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench import common, local, remote

NAME = "cluster"
URL_ENVS = ("TETHER_BENCH_DATABASE_URL", "TETHER_TEST_DATABASE_URL")
WORKER_COUNTS = (1, 2)
LEASE_S = 10.0  # shorter than the 30 s default, so that a worker's loss is measured quickly
RUNNING_AS = re.compile(r"running executions as process (\S+)")
NOOP = "def handler(system, this):\n    return None\n"
BUSY = "def handler(system, this):\n    while True:\n        this.sleep(0.05)\n"


@dataclass(frozen=True)
class Sizes:
    executions: int = 1000
    clients: int = 4
    max_running: int = 16
    lease_s: float = LEASE_S


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    base = next((os.environ[name] for name in URL_ENVS if os.environ.get(name)), None)
    if base is None:
        note = f"not measured: set {URL_ENVS[0]} to a PostgreSQL URL"
        return [common.Figure(NAME, "executions per second", "/s", None, note=note)]
    figures = []
    for count in WORKER_COUNTS:
        with fresh_database(base) as url, cluster(url, count, sizes) as (server, workers):
            rate, claimers = burst_rate(server, url, sizes)
            note = (
                f"{sizes.executions} started over the API by {sizes.clients} clients, first "
                f"start to last end (server times); claims per worker: {claimers}"
            )
            figures.append(
                common.rate_figure(
                    NAME, f"executions per second, {count} worker(s)", [rate], baseline_ms, note
                )
            )
    with fresh_database(base) as url, cluster(url, 2, sizes) as (server, workers):
        lost_s = worker_loss_s(server, workers, sizes.lease_s)
        note = f"kill -9 of the worker running it, to ENDED_ERROR; lease {sizes.lease_s:g} s"
        figures.append(
            common.latency_figure(
                NAME, "killed worker's execution ended", [lost_s * 1000], baseline_ms, note
            )
        )
    with fresh_database(base) as url:
        taken_s, remote_s = dialer_takeover_s(url, sizes.lease_s)
    note = f"kill -9 of the server dialing the link, to GET /process naming the other; lease {sizes.lease_s:g} s"
    figures.append(
        common.latency_figure(NAME, "dialer taken over", [taken_s * 1000], baseline_ms, note)
    )
    note = "a remote execution started on the other server at the kill, to its ENDED_SUCCESS"
    figures.append(
        common.latency_figure(
            NAME, "remote execution across a takeover", [remote_s * 1000], baseline_ms, note
        )
    )
    return figures


@contextlib.contextmanager
def fresh_database(base: str) -> Iterator[str]:
    name = "tether_bench_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(
        base.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def cluster(
    url: str, workers: int, sizes: Sizes
) -> Iterator[tuple[common.Workspace, list[subprocess.Popen[str]]]]:
    """A server without a runner and ``workers`` workers on the database at ``url``."""
    lease = ("--lease-s", str(sizes.lease_s))
    with common.served_workspace("cluster", "--database-url", url, "--no-runner", *lease) as server:
        started: list[subprocess.Popen[str]] = []
        try:
            for index in range(workers):
                started.append(start_worker(url, f"w{index}", sizes, lease))
            yield server, started
        finally:
            for process in started:
                common.stop_process(process, "tether worker")


def start_worker(
    url: str, name: str, sizes: Sizes, lease: tuple[str, ...]
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tether.cli", "worker", "--database-url", url, "--name", name]
    command += ["--max-running", str(sizes.max_running), *lease]
    env = {**os.environ, "TETHER_SANDBOX_WRITABLE": str(common.FLOW_WRITABLE)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if RUNNING_AS.search(line):
            threading.Thread(target=_drain, args=(process,), daemon=True).start()
            return process
    raise RuntimeError("tether worker did not start:\n" + "".join(output))


def _drain(process: subprocess.Popen[str]) -> None:
    """Keep reading a worker's output so that a full pipe never blocks it."""
    for _line in process.stdout or ():
        pass


def burst_rate(server: common.Workspace, url: str, sizes: Sizes) -> tuple[float, list[int]]:
    """Executions per second of a burst, and how many each worker claimed."""
    with server.client() as client:
        local.create_flow(client, "noop", NOOP)
        burst_sizes = local.Sizes(executions=sizes.executions, clients=sizes.clients)
        asyncio.run(local.start_all(server, {"flow_name": "noop"}, burst_sizes))
        local.wait_all_ended(client, "noop", sizes.executions)
    engine = sa.create_engine(common_url(url))
    try:
        with engine.connect() as conn:
            first, last, ended = conn.execute(
                sa.text(
                    "SELECT min(created_at), max(ended_at), count(*) FROM execution "
                    "WHERE status = 'ENDED_SUCCESS'"
                )
            ).one()
            claims = conn.execute(sa.text("SELECT count(*) FROM execution GROUP BY worker"))
            claimers = sorted(int(n) for (n,) in claims)
    finally:
        engine.dispose()
    if ended != sizes.executions:
        raise RuntimeError(f"{ended} of {sizes.executions} executions succeeded")
    return ended / (last - first), claimers


def worker_loss_s(
    server: common.Workspace, workers: list[subprocess.Popen[str]], lease_s: float
) -> float:
    """Seconds from kill -9 of the worker running an execution until the execution ended."""
    with server.client() as client:
        local.create_flow(client, "busy", BUSY)
        execution_id = client.post("/execution", json={"flow_name": "busy"}).json()["id"]
        pid = running_pid(client, execution_id)
        victim = next(w for w in workers if w.pid == pid)
        killed_at = time.time()
        os.kill(victim.pid, signal.SIGKILL)
        record = local.wait_ended(client, execution_id, timeout_s=lease_s * 3 + 30)
    if record["status"] != "ENDED_ERROR":
        raise RuntimeError(f"the lost execution ended {record['status']}: {record['message']}")
    ended_at = datetime.fromisoformat(record["ended_at"].replace("Z", "+00:00")).timestamp()
    return ended_at - killed_at


def dialer_takeover_s(url: str, lease_s: float) -> tuple[float, float]:
    """Two servers of one workspace on ``url`` and a link to a third (SQLite) workspace:
    seconds from kill -9 of the server dialing it until the other says it dials it, and
    until a remote execution started on the other at the kill has ended."""
    secret = Path(tempfile.mkdtemp(prefix="tether-bench-secret-")) / "secret.key"
    secret.write_text(os.urandom(32).hex() + "\n")  # the servers of one workspace share it
    secret.chmod(0o600)
    hub_args: tuple[str, ...] = ("--database-url", url, "--no-runner", "--lease-s", str(lease_s))
    hub_args += ("--secret-file", str(secret))
    try:
        with contextlib.ExitStack() as stack:
            edge = stack.enter_context(common.served_workspace("bench-edge"))
            hubs = {
                name: stack.enter_context(
                    common.served_workspace("bench-hub", *hub_args, "--process-name", name)
                )
                for name in ("web1", "web2")
            }
            remote.link(hubs["web1"], edge, remote.Direction("A", hub_dials=True))
            with hubs["web1"].client() as client:
                local.create_flow(client, "noop", NOOP)
                holder = wait_dialer(client, lambda names: len(names) == 1, lease_s)[0]
            survivor = "web2" if holder == "web1" else "web1"
            with hubs[survivor].client() as client:
                warm = client.post(
                    "/execution",
                    json={"flow_name": "noop", "remote_workspace_name": remote.HUB_CONFIG},
                )
                warm.raise_for_status()
                local.wait_ended(client, warm.json()["id"], timeout_s=60)
                killed_at = time.monotonic()
                os.kill(hubs[holder].process.pid, signal.SIGKILL)
                started = client.post(
                    "/execution",
                    json={"flow_name": "noop", "remote_workspace_name": remote.HUB_CONFIG},
                )
                started.raise_for_status()
                wait_dialer(client, lambda names: names == [survivor], lease_s)
                taken_s = time.monotonic() - killed_at
                record = local.wait_ended(client, started.json()["id"], timeout_s=lease_s * 3 + 30)
                remote_s = time.monotonic() - killed_at
            if record["status"] != "ENDED_SUCCESS":
                raise RuntimeError(f"the remote execution ended {record['status']}")
            return taken_s, remote_s
    finally:
        shutil.rmtree(secret.parent, ignore_errors=True)


def wait_dialer(
    client: httpx.Client, is_done: Callable[[list[str]], bool], lease_s: float
) -> list[str]:
    """The names of the servers dialing the link once ``is_done`` says so (polled)."""
    deadline = time.monotonic() + lease_s * 3 + 30
    names: list[str] = []
    while time.monotonic() < deadline:
        processes = client.get("/process").json()
        names = sorted(p["name"] for p in processes if remote.HUB_CONFIG in p["dials"])
        if is_done(names):
            return names
        time.sleep(local.POLL_S)
    raise RuntimeError(f"the servers dialing the link stayed {names}")


def running_pid(client: httpx.Client, execution_id: str) -> int:
    """The pid of the worker whose process runs ``execution_id``, once one does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for item in client.get("/process").json():
            if execution_id in item["running_executions"]:
                return int(item["pid"])
        time.sleep(0.05)
    raise RuntimeError(f"no worker ran {execution_id}")


def common_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)
