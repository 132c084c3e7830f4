"""Backfill: send_all_executions turned on over M past executions, until all are mirrored.

Both workspaces are real `tether serve` processes; the hub's past executions are written into
its store directly (tether.store.executions.insert) before its server starts, since starting
100,000 real executions would take far longer than mirroring them.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common, local, remote
from tether.statuses import Status
from tether.store import executions
from tether.store.database import Database

NAME = "backfill"
SAMPLE_S = 0.1  # memory is sampled this often during the backfill
BEFORE_S = 2.0  # and for this long before it, for the figure it is compared with
SETTLE_S = 2.0
STATUS_POLL_S = 0.25
SEED_SPACING_S = 0.001  # between the created_at times of the seeded executions


@dataclass(frozen=True)
class Sizes:
    """How many past executions the hub holds."""

    executions: int = 100_000


@dataclass
class Memory:
    """RSS of each workspace's process tree, sampled every ``SAMPLE_S`` by a thread."""

    pids: dict[str, int]
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # (time, MB)
    began: float = float("inf")  # time.monotonic() when the backfill began

    def before(self, name: str) -> list[float]:
        return [rss[name] for t, rss in self.samples if t < self.began]

    def during(self, name: str) -> list[float]:
        return [rss[name] for t, rss in self.samples if t >= self.began]


@dataclass(frozen=True)
class Backfill:
    """What one backfill measured."""

    executions: int
    seed_s: float
    mirror_s: float
    memory: Memory


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Seed a hub, link it to an edge with send_all_executions on, and time the mirroring."""
    seeded: list[float] = []

    def prepare(data_dir: Path) -> None:
        seeded.append(seed(data_dir, sizes.executions))

    with (
        common.served_workspace("bench-backfill-hub", prepare=prepare) as hub,
        common.served_workspace("bench-backfill-edge") as edge,
    ):
        hub_private, hub_public = remote.key_pair()
        edge_private, edge_public = remote.key_pair()
        listen = {"role": "controlled", "own_private_key": edge_private}
        create_config(edge, remote.EDGE_CONFIG, {**listen, "remote_public_key": hub_public})
        time.sleep(SETTLE_S)
        dial = {
            "role": "controlling",
            "own_private_key": hub_private,
            "remote_public_key": edge_public,
            "remote_url": remote.sync_url(edge, remote.EDGE_CONFIG),
            "send_all_executions": True,
        }
        memory = Memory({"hub": hub.process.pid, "edge": edge.process.pid})
        with sampling(memory):
            time.sleep(BEFORE_S)
            memory.began = time.monotonic()
            began = time.perf_counter()
            create_config(hub, remote.HUB_CONFIG, dial)
            wait_mirrored(hub, sizes.executions)
            mirror_s = time.perf_counter() - began
        check_mirrored(edge, sizes.executions)
    return figures(Backfill(sizes.executions, seeded[0], mirror_s, memory), baseline_ms)


def seed(data_dir: Path, count: int) -> float:
    """Write ``count`` ended local executions into the store in ``data_dir``; seconds taken."""
    started = time.perf_counter()
    database = Database(f"sqlite:///{data_dir / 'tether.sqlite3'}")  # where `serve` looks
    try:
        database.migrate()
        first = time.time() - count * SEED_SPACING_S - 60
        sha = hashlib.sha256(local.NOOP_SCRIPT.encode()).hexdigest()
        with database.begin() as conn:
            for index in range(count):
                created = first + index * SEED_SPACING_S
                executions.insert(conn, past_execution(index, created, sha))
    finally:
        database.dispose()
    return time.perf_counter() - started


def past_execution(index: int, created_at: float, script_sha256: str) -> executions.Execution:
    return executions.Execution(
        id=str(uuid.uuid4()),
        name=f"past {index}",
        flow_name="noop",
        status=Status.ENDED_SUCCESS,
        script=local.NOOP_SCRIPT,
        script_sha256=script_sha256,
        input_value={"index": index},
        output_value={"result": index},
        message="done",
        parent_id=None,
        origin=executions.LOCAL,
        sync_config=None,
        remote_execution_id=None,
        is_cancel_requested=False,
        max_runtime_s=None,
        worker="bench",
        owner="admin",
        log_count=0,
        log_synced=0,
        created_at=created_at,
        started_at=created_at + 0.0002,
        ended_at=created_at + 0.0008,
    )


def create_config(workspace: common.Workspace, name: str, values: dict[str, Any]) -> None:
    with workspace.client() as client:
        client.post("/sync_config", json={"name": name, **values}).raise_for_status()


@contextlib.contextmanager
def sampling(memory: Memory) -> Iterator[None]:
    """Sample the workspaces' RSS into ``memory`` until the block ends."""
    stop = threading.Event()

    def sample() -> None:
        trees = {name: common.tree_pids(pid) for name, pid in memory.pids.items()}
        refreshed = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now - refreshed > 1.0:  # a spare child forked meanwhile counts too
                trees = {name: common.tree_pids(pid) for name, pid in memory.pids.items()}
                refreshed = now
            rss = {name: common.usage_of(pids).rss_mb for name, pids in trees.items()}
            memory.samples.append((now, rss))
            stop.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()


def wait_mirrored(hub: common.Workspace, count: int) -> dict[str, Any]:
    """Wait until the hub's backfill is complete and the edge has acked every message."""
    deadline = time.monotonic() + 120 + count / 50
    status: dict[str, Any] = {}
    with hub.client() as client:
        while time.monotonic() < deadline:
            answer = client.get(f"/sync_config/{remote.HUB_CONFIG}/status")
            status = answer.raise_for_status().json()
            backfill = status["backfill"]
            is_acked = status["outbox_depth"] == 0 and status["acked_seq"] >= count
            if backfill["is_complete"] and backfill["done"] >= count and is_acked:
                return status
            time.sleep(STATUS_POLL_S)
    raise RuntimeError(
        f"the backfill of {count} executions did not finish: {status}\n" + "".join(hub.output[-20:])
    )


def check_mirrored(edge: common.Workspace, count: int) -> None:
    """The edge holds exactly ``count`` mirrored executions (read at two offsets)."""
    with edge.client() as client:

        def present_at(offset: int) -> bool:
            query: dict[str, str | int] = {"origin": "mirror", "limit": 1, "offset": offset}
            return bool(client.get("/execution", params=query).raise_for_status().json())

        if not present_at(count - 1) or present_at(count):
            raise RuntimeError(f"the edge does not hold exactly {count} mirrored executions")


def figures(backfill: Backfill, baseline_ms: float) -> list[common.Figure]:
    """Time and rate of the backfill, and each workspace's peak RSS beside its RSS before."""
    count = backfill.executions
    result = [
        common.Figure(
            NAME,
            "time to mirror all",
            "s",
            backfill.mirror_s,
            note=f"{count} past executions (seeded into the store in {backfill.seed_s:.1f} s), "
            "from creating the hub's sync config to the edge acking the last",
        ),
        common.rate_figure(
            NAME,
            "executions mirrored per second",
            [count / backfill.mirror_s],
            baseline_ms,
            "over the whole backfill",
        ),
    ]
    for name in ("hub", "edge"):
        before = common.percentile(backfill.memory.before(name), 50)
        during = backfill.memory.during(name)
        peak = max(during)
        growth = peak - before
        result.append(
            common.Figure(
                NAME,
                f"{name} RSS, peak during backfill",
                "MB",
                peak,
                None,
                len(during),
                None,
                f"before: {before:.1f} MB; peak {growth:+.1f} MB ({growth / before:+.0%}); "
                f"sampled every {SAMPLE_S * 1000:g} ms, server + fork server + spare child",
            )
        )
    return result
