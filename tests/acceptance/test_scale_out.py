"""One workspace on several processes over one PostgreSQL: `tether serve --no-runner` and
real `tether worker` processes race for executions, die, are paused past their lease and
are cut from the database; servers take a link over from a killed one.

Leases are short here (flags). The times they take are measured in bench/ (cluster); the
tests hold them only to loose bounds, several leases wide, that no other path (a timeout,
a once-a-minute re-read) could meet.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.acceptance.conftest import generated_keys
from tests.conftest import PG_ENV, _postgres_database
from tests.support.faultproxy import FaultProxy
from tests.support.processes import descendants, wait_all_gone
from tests.support.waiting import wait_until
from tests.support.workers import WorkerProcess
from tests.support.workspace import ApiClient, ServedWorkspace, flow_writable_dir
from tether.store import notices
from tether.store.database import normalize_url

LEASE_S = "2"  # short, so that a lost worker is noticed within a few seconds
WAIT_S = 60.0  # generous bounds for waits on a loaded machine; never a measured time
# Executions queued before three workers start racing for them (the size).
RACED = int(os.environ.get("TETHER_TEST_RACED", "1000"))
# A token revoked on one server is refused by another within this (the bound); by
# itself the other server re-reads a session it keeps only once a minute.
REVOKED_S = 5.0
# A killed worker's execution ends within: its lease (2 s) + one reaper pass (1/3 s), with
# room for a loaded machine; far below what any other path (a timeout) would take.
LOST_BOUND_S = 15.0
# Remote executions in the burst across a dialer takeover; the size is 2000.
BURST = int(os.environ.get("TETHER_TEST_TAKEOVER_BURST", "300"))
# A killed dialer's link is taken over within: its lease (2 s) + one linker round (1 s),
# with room for a loaded machine; the default (15 s after the last heartbeat) would miss it.
TAKEOVER_BOUND_S = 12.0

# Appends one line to a marker file of its own: a second run would add a second line.
RUN_ONCE = """
import os

def handler(system, this, inputs):
    with open(os.path.join(inputs['dir'], str(inputs['n'])), 'a') as marker:
        marker.write('ran\\n')
"""

# Marks that it ran, starts a helper, records both pids, then saves a tick until stopped.
BUSY = """
import os
import subprocess

def handler(system, this, inputs):
    with open(os.path.join(inputs['dir'], 'busy'), 'a') as marker:
        marker.write('ran\\n')
    helper = subprocess.Popen(['sleep', '300'])
    system.setting('pids').save(value=[os.getpid(), helper.pid])
    tick = 0
    while True:
        tick += 1
        this.save(output_value={'tick': tick})
        this.sleep(0.05)
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database; the tests skip when none is configured."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"scale-out tests need PostgreSQL: set {PG_ENV}")
    yield from _postgres_database(base)


class Cluster:
    """A `tether serve --no-runner` and the workers started on its store."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root
        self.workers: list[WorkerProcess] = []
        self.server = ServedWorkspace(
            "scaled",
            root / "server",
            extra_args=["--database-url", url, "--no-runner", "--lease-s", LEASE_S],
        ).start()
        self.api = self.server.client()
        self.engine = sa.create_engine(normalize_url(url))

    def add_worker(self, name: str, *args: str, url: str | None = None) -> WorkerProcess:
        """A worker on the cluster's database (through ``url`` when given)."""
        worker = WorkerProcess(url or self.url, name, ["--lease-s", LEASE_S, *args])
        self.workers.append(worker)
        return worker.start()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.api.client.close()
        self.server.stop()
        self.server.kill()
        self.engine.dispose()

    def claimers(self) -> dict[str, int]:
        """How many executions each process id claimed."""
        query = sa.text("SELECT worker, count(*) FROM execution GROUP BY worker")
        with self.engine.connect() as conn:
            return {row[0]: row[1] for row in conn.execute(query)}

    def worker_of(self, execution_id: str) -> str:
        """The id of the process that claimed ``execution_id``."""
        query = sa.text("SELECT worker FROM execution WHERE id = :id")
        with self.engine.connect() as conn:
            worker: str = conn.execute(query, {"id": execution_id}).scalar_one()
        return worker

    def processes(self) -> list[dict[str, Any]]:
        return list(self.api.ok("GET", "/process"))

    def runner_of(self, execution_id: str) -> WorkerProcess:
        """The worker whose process runs ``execution_id`` now."""
        for item in self.processes():
            if execution_id in item["running_executions"]:
                return next(w for w in self.workers if w.process_id == item["id"])
        raise AssertionError(f"no live process runs {execution_id}: {self.processes()}")


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(pg_url, tmp_path)
    yield started
    started.close()


def start_many(api: ApiClient, directory: Path, numbers: range, **body: Any) -> list[str]:
    """Start RUN_ONCE for each number, from four threads at once; their ids in order."""

    def one(n: int) -> str:
        inputs = {"dir": str(directory), "n": n}
        return str(api.start("once", input_value=inputs, **body)["id"])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, numbers))


def markers(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in directory.iterdir()}


# --- refusals ---------------------------------------------------------------------------


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    command = [sys.executable, "-m", "tether.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_a_worker_refuses_a_sqlite_store_saying_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    done = run_cli("worker", "--database-url", url, tmp_path=tmp_path)
    assert done.returncode == 1
    assert "tether worker needs the workspace's PostgreSQL store" in done.stderr
    assert "no other process may share it" in done.stderr
    assert not (tmp_path / "store.sqlite3").exists()


def test_serve_without_a_runner_refuses_a_sqlite_store_saying_why(tmp_path: Path) -> None:
    done = run_cli("serve", "--data-dir", str(tmp_path / "data"), "--no-runner", tmp_path=tmp_path)
    assert done.returncode == 1
    assert "--no-runner needs the workspace's PostgreSQL store" in done.stderr


# --- on PostgreSQL ----------------------------------------------------------------------


def test_three_workers_racing_run_each_queued_execution_exactly_once(cluster: Cluster) -> None:
    directory = flow_writable_dir("raced-")
    cluster.api.create_flow("once", RUN_ONCE)
    ids = start_many(cluster.api, directory, range(RACED))
    assert unended(cluster) == {"QUEUED": RACED}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # three start together
        workers = list(
            pool.map(lambda i: cluster.add_worker(f"racer-{i}", "--max-running", "4"), range(3))
        )
    wait_until(
        lambda: not unended(cluster),
        f"{RACED} executions to end",
        WAIT_S + RACED / 10,
        poll_s=0.2,
    )
    assert hub_statuses(cluster.url) == {"ENDED_SUCCESS": RACED}
    assert len(set(ids)) == RACED
    assert markers(directory) == {str(n): "ran\n" for n in range(RACED)}
    claimers = cluster.claimers()
    assert sum(claimers.values()) == RACED
    assert set(claimers) <= {w.process_id for w in workers}
    assert len(claimers) == 3, f"the workers did not all race: {claimers}"


def test_a_killed_worker_s_execution_ends_with_error_and_the_other_worker_goes_on(
    cluster: Cluster,
) -> None:
    directory = flow_writable_dir("killed-")
    cluster.api.create_flow("busy", BUSY)
    cluster.api.create_flow("once", RUN_ONCE)
    for name in ("first", "second"):
        cluster.add_worker(name)
    execution = cluster.api.start("busy", input_value={"dir": str(directory)})
    execution_pid, helper_pid = cluster.api.wait_setting("pids", WAIT_S)
    victim = cluster.runner_of(execution["id"])
    survivor = next(w for w in cluster.workers if w is not victim)
    family = descendants(victim.pid)
    assert {execution_pid, helper_pid} <= family

    victim.signal(signal.SIGKILL)
    record = cluster.api.wait_ended(execution["id"], LOST_BOUND_S)
    wait_all_gone(family)

    assert record["status"] == "ENDED_ERROR"
    assert f"the worker '{victim.name}' (process {victim.process_id}" in record["message"]
    assert "its last heartbeat was at" in record["message"]
    assert "The script may have partly run; it will not run again" in record["message"]
    assert markers(directory) == {"busy": "ran\n"}
    after = cluster.api.run("once", input_value={"dir": str(directory), "n": 1})
    assert after["status"] == "ENDED_SUCCESS"
    assert cluster.claimers()[survivor.process_id] == 1
    live = {item["id"] for item in cluster.processes()}
    assert victim.process_id not in live and survivor.process_id in live


def test_a_worker_paused_past_its_lease_is_fenced_and_rejoins_under_a_new_id(
    cluster: Cluster,
) -> None:
    directory = flow_writable_dir("paused-")
    cluster.api.create_flow("busy", BUSY)
    cluster.add_worker("pausing")
    execution = cluster.api.start("busy", input_value={"dir": str(directory)})
    execution_pid, helper_pid = cluster.api.wait_setting("pids", WAIT_S)
    [paused] = cluster.workers
    path = f"/execution/{execution['id']}"
    wait_until(
        lambda: cluster.api.ok("GET", path)["output_value"].get("tick"), "a tick saved", WAIT_S
    )

    paused.signal(signal.SIGSTOP)
    ended = cluster.api.wait_ended(execution["id"], WAIT_S)
    assert ended["status"] == "ENDED_ERROR"
    assert f"the worker 'pausing' (process {paused.process_id}" in ended["message"]
    log_before = cluster.api.log(execution["id"])
    paused.signal(signal.SIGCONT)

    wait_all_gone({execution_pid, helper_pid})
    rejoined = wait_until(
        lambda: [p for p in cluster.processes() if p["pid"] == paused.pid],
        "the resumed worker rejoins",
        WAIT_S,
    )
    assert rejoined[0]["id"] != paused.process_id
    assert paused.process is not None and paused.process.poll() is None
    # Its late writes (ticks, log lines, an end) changed nothing.
    assert cluster.api.ok("GET", path) == ended
    assert cluster.api.log(execution["id"]) == log_before
    assert markers(directory) == {"busy": "ran\n"}
    # And it runs new work under its new id.
    cluster.api.create_flow("once", RUN_ONCE)
    after = cluster.api.run("once", input_value={"dir": str(directory), "n": 1})
    assert after["status"] == "ENDED_SUCCESS"
    # (under its new id, or a newer one if it lost its lease again under load)
    assert cluster.worker_of(after["id"]) != paused.process_id


def unended(cluster: Cluster) -> dict[str, int]:
    """How many executions of each status have not ended."""
    query = sa.text(
        "SELECT status, count(*) FROM execution WHERE status NOT LIKE 'ENDED%' GROUP BY status"
    )
    with cluster.engine.connect() as conn:
        return {row[0]: row[1] for row in conn.execute(query)}


def run_once_each(cluster: Cluster, directory: Path, numbers: range) -> list[str]:
    """Start RUN_ONCE for each number at once, wait for every one to succeed; their ids."""
    ids = [
        cluster.api.start("once", input_value={"dir": str(directory), "n": n})["id"]
        for n in numbers
    ]
    for execution_id in ids:
        assert cluster.api.wait_ended(execution_id, WAIT_S)["status"] == "ENDED_SUCCESS"
    return ids


def test_a_worker_cut_from_postgresql_is_fenced_and_after_healing_runs_nothing_twice(
    cluster: Cluster,
) -> None:
    """A black-holing proxy between one worker and PostgreSQL: nothing it sends arrives and
    nothing comes back, on its open connections and on new ones, until the path heals and
    what was held arrives late."""
    directory = flow_writable_dir("cut-")
    cluster.api.create_flow("busy", BUSY)
    cluster.api.create_flow("once", RUN_ONCE)
    database = sa.make_url(cluster.url)
    with FaultProxy(database.host or "127.0.0.1", database.port or 5432) as proxy:
        through = database.set(port=proxy.port).render_as_string(hide_password=False)
        cut = cluster.add_worker("cut", url=through)
        execution = cluster.api.start("busy", input_value={"dir": str(directory)})
        execution_pid, helper_pid = cluster.api.wait_setting("pids", WAIT_S)
        path = f"/execution/{execution['id']}"
        wait_until(
            lambda: cluster.api.ok("GET", path)["output_value"].get("tick"), "a tick", WAIT_S
        )
        steady = cluster.add_worker("steady")  # straight to the database

        proxy.set_mode("blackhole")
        proxy.stall(True)
        # Cut off, it still stops its scripts (its own clock), and the others reap its work.
        wait_all_gone({execution_pid, helper_pid})
        ended = cluster.api.wait_ended(execution["id"], WAIT_S)
        assert ended["status"] == "ENDED_ERROR"
        assert f"the worker 'cut' (process {cut.process_id}" in ended["message"]
        assert "The script may have partly run; it will not run again" in ended["message"]
        assert cut.process_id not in {p["id"] for p in cluster.processes()}
        run_once_each(cluster, directory, range(0, 20))  # the steady worker goes on
        log_before = cluster.api.log(execution["id"])

        proxy.stall(False)  # what the cut worker sent meanwhile arrives now
        proxy.set_mode("pass")
        rejoined = wait_until(
            lambda: [p for p in cluster.processes() if p["pid"] == cut.pid],
            "the healed worker rejoins",
            WAIT_S,
        )
        assert rejoined[0]["id"] != cut.process_id
        run_once_each(cluster, directory, range(20, 40))
        steady.stop()
        (last,) = run_once_each(cluster, directory, range(40, 41))  # the healed worker alone
        # Under load it may lose its lease once more and rejoin under yet another id: the
        # claimer is neither the steady worker nor the first id of the cut one.
        assert cluster.worker_of(last) not in {steady.process_id, cut.process_id}
        assert proxy.connections_total > 0  # it did go through the proxy

    assert cut.process is not None and cut.process.poll() is None
    # Its late writes (ticks, log lines, an end) changed nothing; nothing ran twice.
    assert cluster.api.ok("GET", path) == ended
    assert cluster.api.log(execution["id"]) == log_before
    assert markers(directory) == {"busy": "ran\n", **{str(n): "ran\n" for n in range(41)}}
    assert unended(cluster) == {}


def test_the_process_list_is_for_admins_and_shows_kinds_and_running_work(
    cluster: Cluster,
) -> None:
    directory = flow_writable_dir("listed-")
    cluster.api.create_flow("busy", BUSY)
    worker = cluster.add_worker("listed")
    execution = cluster.api.start("busy", input_value={"dir": str(directory)})
    cluster.api.wait_setting("pids", WAIT_S)
    listed = {item["id"]: item for item in cluster.processes()}
    assert listed[worker.process_id]["kind"] == "worker"
    assert listed[worker.process_id]["pid"] == worker.pid
    assert listed[worker.process_id]["running_executions"] == [execution["id"]]
    assert [item["kind"] for item in listed.values()].count("serve") == 1
    cluster.api.ok("POST", "/user", json={"name": "u", "password": "password-u", "role": "user"})
    with httpx.Client(base_url=cluster.server.api_url, timeout=30) as http:
        user = ApiClient.login(http, "u", "password-u")
        assert user.get("/process").status_code == 403


# --- wake-ups across processes ----------------------------------------------------------


def listen_connections(cluster: Cluster) -> list[int]:
    query = sa.text(
        "SELECT pid FROM pg_stat_activity WHERE application_name = :name "
        "AND datname = current_database()"
    )
    with cluster.engine.connect() as conn:
        return list(conn.execute(query, {"name": notices.APPLICATION_NAME}).scalars())


def kill_listen_connections(cluster: Cluster) -> int:
    """Terminate every process's LISTEN connection, as a broken network would; how many."""
    pids = listen_connections(cluster)
    with cluster.engine.connect() as conn:
        for pid in pids:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    return len(pids)


@pytest.mark.parametrize("is_listen_killed", [False, True])
def test_a_cancel_on_the_server_stops_the_execution_a_worker_runs(
    cluster: Cluster, is_listen_killed: bool
) -> None:
    """With its LISTEN connection killed, the worker still learns of the cancel by polling."""
    directory = flow_writable_dir("cancelled-")
    cluster.api.create_flow("busy", BUSY)
    cluster.add_worker("cancelled")
    execution = cluster.api.start("busy", input_value={"dir": str(directory)})
    execution_pid, helper_pid = cluster.api.wait_setting("pids", WAIT_S)
    if is_listen_killed:
        wait_until(lambda: len(listen_connections(cluster)) == 2, "both processes listen", WAIT_S)
        kill_listen_connections(cluster)
    cluster.api.ok("POST", f"/execution/{execution['id']}/cancel")
    record = cluster.api.wait_ended(execution["id"], WAIT_S)
    assert record["status"] == "ENDED_CANCELLED"
    wait_all_gone({execution_pid, helper_pid})
    if is_listen_killed:
        wait_until(lambda: len(listen_connections(cluster)) == 2, "both listen again", WAIT_S)


def test_with_the_listen_connections_killed_over_and_over_work_still_completes(
    cluster: Cluster,
) -> None:
    """Notifications sent while a process does not listen are lost: the polls behind them
    (claims, cancels) carry the work."""
    directory = flow_writable_dir("deaf-")
    cluster.api.create_flow("once", RUN_ONCE)
    cluster.api.create_flow("busy", BUSY)
    cluster.add_worker("deaf")
    wait_until(lambda: len(listen_connections(cluster)) == 2, "both processes listen", WAIT_S)
    stopping = threading.Event()
    killed: list[int] = []

    def keep_killing() -> None:
        while not stopping.is_set():
            killed.append(kill_listen_connections(cluster))
            stopping.wait(0.02)

    killer = threading.Thread(target=keep_killing, daemon=True)
    killer.start()
    try:
        ids = start_many(cluster.api, directory, range(20))
        for execution_id in ids:
            assert cluster.api.wait_ended(execution_id, WAIT_S)["status"] == "ENDED_SUCCESS"
        execution = cluster.api.start("busy", input_value={"dir": str(directory)})
        execution_pid, helper_pid = cluster.api.wait_setting("pids", WAIT_S)
        cluster.api.ok("POST", f"/execution/{execution['id']}/cancel")
        assert cluster.api.wait_ended(execution["id"], WAIT_S)["status"] == "ENDED_CANCELLED"
        wait_all_gone({execution_pid, helper_pid})
    finally:
        stopping.set()
        killer.join(10)
    assert sum(killed) >= 2, "the LISTEN connections were never killed"
    assert markers(directory) == {"busy": "ran\n", **{str(n): "ran\n" for n in range(20)}}
    wait_until(lambda: len(listen_connections(cluster)) == 2, "both listen again", WAIT_S)


def test_a_token_revoked_on_one_server_is_refused_by_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    other = ServedWorkspace(
        "scaled",
        tmp_path / "other",
        extra_args=["--database-url", cluster.url, "--no-runner", "--lease-s", LEASE_S],
    ).start()
    try:
        with httpx.Client(base_url=other.api_url, timeout=30) as http:
            # The token of the cluster's client, used on the other server: it is kept there.
            there = ApiClient(http, cluster.api.token)
            assert there.get("/flow").status_code == 200
            assert there.get("/flow").status_code == 200
            wait_until(lambda: len(listen_connections(cluster)) == 2, "both listen", WAIT_S)
            cluster.api.ok("POST", "/auth/logout")
            # The other server re-reads a kept session only once a minute by itself: within
            # this bound, only the wake-up from the first one can have told it.
            refused = lambda: there.get("/flow").status_code == 401  # noqa: E731
            wait_until(refused, "refused on the other server", timeout_s=REVOKED_S)
    finally:
        other.stop()
        other.kill()


# --- one dialer per link across servers -------------------------------------------------


def hub_server(name: str, root: Path, url: str, secret: Path) -> ServedWorkspace:
    args = [
        "--database-url",
        url,
        "--no-runner",
        "--lease-s",
        LEASE_S,
        "--secret-file",
        str(secret),
    ]
    return ServedWorkspace("hub", root / name, extra_args=[*args, "--process-name", name]).start()


def dialers_of(api: ApiClient, link: str) -> list[str]:
    """The names of the live servers that say they dial ``link``."""
    return [p["name"] for p in api.ok("GET", "/process") if link in p["dials"]]


def all_executions(api: ApiClient) -> list[dict[str, Any]]:
    """Every execution of a workspace, page by page."""
    found: list[dict[str, Any]] = []
    while page := api.ok("GET", "/execution", params={"limit": 1000, "offset": len(found)}):
        found += page
    return found


def hub_statuses(url: str) -> dict[str, int]:
    """How many of the hub's executions have each status."""
    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT status, count(*) FROM execution GROUP BY status")
            return {row[0]: row[1] for row in conn.execute(query)}
    finally:
        engine.dispose()


def test_one_server_dials_a_link_and_another_takes_over_a_burst_when_it_is_killed(
    pg_url: str, tmp_path: Path
) -> None:
    """Two servers of one workspace and one link: one dials at a time; kill -9 of it in the
    middle of a burst of remote executions, and the other takes the link over within the
    bound, and every remote execution runs once and ends ENDED_SUCCESS."""
    secret = tmp_path / "secret.key"  # the servers of one workspace share their secret
    secret.write_text("ab" * 32 + "\n")
    secret.chmod(0o600)
    edge = ServedWorkspace("edge", tmp_path / "edge").start()
    servers = {name: hub_server(name, tmp_path, pg_url, secret) for name in ("web1", "web2")}
    apis = {name: server.client() for name, server in servers.items()}
    edge_api = edge.client()
    directory = flow_writable_dir("dialed-")
    try:
        hub_keys, edge_keys = generated_keys(), generated_keys()
        edge_api.ok("POST", "/sync_config", json={
            "name": "hub", "role": "controlled",
            "own_private_key": edge_keys.private, "remote_public_key": hub_keys.public,
        })  # fmt: skip
        apis["web1"].ok("POST", "/sync_config", json={
            "name": "edge", "role": "controlling",
            "own_private_key": hub_keys.private, "remote_public_key": edge_keys.public,
            "remote_url": f"{edge.api_url}/sync_config/hub/sync",
        })  # fmt: skip
        apis["web1"].create_flow("once", RUN_ONCE)
        [holder] = wait_until(lambda: dialers_of(apis["web1"], "edge"), "a server dials", WAIT_S)
        survivor = "web2" if holder == "web1" else "web1"
        first = apis[survivor].run(
            "once", input_value={"dir": str(directory), "n": BURST}, remote_workspace_name="edge"
        )
        assert first["status"] == "ENDED_SUCCESS", first
        assert dialers_of(apis[survivor], "edge") == [holder], "one dialer at a time"
        assert dialers_of(apis[holder], "edge") == [holder], "both servers see one dialer"

        half = BURST // 2
        ids = start_many(apis[survivor], directory, range(half), remote_workspace_name="edge")
        servers[holder].kill()  # kill -9, with the first half on its way
        killed_at = time.monotonic()
        ids += start_many(
            apis[survivor], directory, range(half, BURST), remote_workspace_name="edge"
        )
        wait_until(
            lambda: dialers_of(apis[survivor], "edge") == [survivor],
            "the other server takes the link over",
            TAKEOVER_BOUND_S,
        )
        took_over_s = time.monotonic() - killed_at
        wait_until(
            lambda: hub_statuses(pg_url).get("ENDED_SUCCESS", 0) == BURST + 1,
            f"{BURST} remote executions to end (took over after {took_over_s:.1f} s)",
            WAIT_S + BURST / 10,
        )
        assert hub_statuses(pg_url) == {"ENDED_SUCCESS": BURST + 1}
        assert len(set(ids)) == BURST
        # Each ran once on the edge: one marker line each, and the edge received each once.
        assert markers(directory) == {str(n): "ran\n" for n in range(BURST + 1)}
        received = all_executions(edge_api)
        assert len(received) == len({r["id"] for r in received}) == BURST + 1
        assert {r["status"] for r in received} == {"ENDED_SUCCESS"}
    finally:
        for api in [*apis.values(), edge_api]:
            api.client.close()
        for server in [*servers.values(), edge]:
            server.stop()
            server.kill()


PARENT = """
def handler(system, this, inputs):
    this.flow('busy', remote_workspace_name='edge', dir=inputs['dir'])
"""


def test_a_remote_parent_learns_that_the_worker_running_its_child_was_lost(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The cluster is the controlled side of a link; a SQLite workspace controls it."""
    hub = ServedWorkspace("hub", tmp_path / "hub").start()
    hub_api = hub.client()
    directory = flow_writable_dir("remote-")
    try:
        hub_keys, edge_keys = generated_keys(), generated_keys()
        cluster.api.ok("POST", "/sync_config", json={
            "name": "hub", "role": "controlled",
            "own_private_key": edge_keys.private, "remote_public_key": hub_keys.public,
        })  # fmt: skip
        hub_api.ok("POST", "/sync_config", json={
            "name": "edge", "role": "controlling",
            "own_private_key": hub_keys.private, "remote_public_key": edge_keys.public,
            "remote_url": f"{cluster.server.api_url}/sync_config/hub/sync",
        })  # fmt: skip
        hub_api.create_flow("busy", BUSY)
        hub_api.create_flow("parent", PARENT)
        worker = cluster.add_worker("far")
        parent = hub_api.start("parent", input_value={"dir": str(directory)})
        cluster.api.wait_setting("pids", WAIT_S)

        worker.signal(signal.SIGKILL)
        ended = hub_api.wait_ended(parent["id"], WAIT_S)

        assert ended["status"] == "ENDED_ERROR"
        [child] = hub_api.ok("GET", "/execution", params={"parent_id": parent["id"]})
        assert child["status"] == "ENDED_ERROR"
        assert f"the worker 'far' (process {worker.process_id}" in child["message"]
        assert "may have partly run" in child["message"]
        assert markers(directory) == {"busy": "ran\n"}
    finally:
        hub_api.client.close()
        hub.stop()
        hub.kill()
