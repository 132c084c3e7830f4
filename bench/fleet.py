"""Fleet: one controlling hub linked to N controlled sync configs that each dial out to it.

The hub is a real `tether serve`, driven over its REST API; the N controlled sync configs live
in one separate process (bench/fleet_edges.py) running the engine's own store, dialer and runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import common, local, remote

NAME = "fleet"
EDGES_SCRIPT = Path(__file__).with_name("fleet_edges.py")
DEFAULT_LINKS = (100,)  # in the default run: about 80 s; issue 5's sizes by flag
SETTLE_S = 3.0  # after start-up or connecting: first exchanges and housekeeping rounds end
WINDOW_S = 10  # CPU is given per 10 s of idling
WARMUP_STARTS = 10
# Each poll is a request the hub must answer beside the link traffic it measures: at 2 ms
# they delayed the update they wait for; 5 ms costs at most that much in resolution.
POLL_S = 0.005
START_TIMEOUT_S = 30.0
PAIRING_CLIENTS = 4
EDGE_EVENT_TIMEOUT_S = 30.0
MEMORY_TARGET_MB = 1.0  # issue 5: the hub holds 1,000 idle links with under 1 MB each
LATENCY_TARGET_MS = 50.0  # issue 5: start latency p99 under 50 ms
HOLD_S = 25.0  # the hub's default long-poll hold (--long-poll-s), left as it is
PARENT_SCRIPT = """\
import random
import time


def handler(system, this, inputs):
    chooser = random.Random(inputs["seed"])
    durations_ms = []
    for index in range(inputs["warmup"] + inputs["calls"]):
        name = chooser.choice(inputs["names"])
        start = time.perf_counter()
        this.flow("noop", remote_workspace_name=name)
        if index >= inputs["warmup"]:
            durations_ms.append((time.perf_counter() - start) * 1000)
    this.save(output_value={"durations_ms": durations_ms})
"""


@dataclass(frozen=True)
class Sizes:
    """Fleet sizes, and how long and how much each is measured."""

    links: tuple[int, ...] = DEFAULT_LINKS
    starts: int = 200
    idle_s: int = 30  # longer than one hold, so that every link renews its long poll in it


@dataclass(frozen=True)
class Keys:
    """One key pair for the hub's sync configs and one shared by every controlled one."""

    hub_private: str
    hub_public: str
    edge_private: str
    edge_public: str


@dataclass(frozen=True)
class Idle:
    """Samples of the hub's process tree, one a second while nothing is asked of it."""

    samples: list[common.Usage]

    @property
    def rss_mb(self) -> list[float]:
        return [sample.rss_mb for sample in self.samples]

    @property
    def cpu_s_per_window(self) -> float:
        """CPU seconds per ``WINDOW_S`` of wall time, over the whole watch."""
        spent = self.samples[-1].cpu_s - self.samples[0].cpu_s
        return spent * WINDOW_S / (len(self.samples) - 1)

    @property
    def worst_window_cpu_s(self) -> float:
        """The most CPU seconds spent in any ``WINDOW_S`` window of the watch."""
        cpu = [sample.cpu_s for sample in self.samples]
        width = min(WINDOW_S, len(cpu) - 1)
        return max(cpu[i + width] - cpu[i] for i in range(len(cpu) - width)) * WINDOW_S / width


@dataclass(frozen=True)
class Fleet:
    """What one fleet size measured."""

    links: int
    empty: Idle  # the same hub before it had any link
    linked: Idle
    connect_s: float
    starts_ms: list[float]
    in_flow_ms: list[float]
    edges: common.Usage
    load: float  # the 1-minute load average once the starts were measured


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Measure every fleet size on a fresh hub and a fresh edges process."""
    hub_private, hub_public = remote.key_pair()
    edge_private, edge_public = remote.key_pair()
    keys = Keys(hub_private, hub_public, edge_private, edge_public)
    figures: list[common.Figure] = []
    for links in sizes.links:
        print(f"  fleet of {links} links ...", file=sys.stderr, flush=True)
        figures += fleet_figures(measure(links, keys, sizes), baseline_ms)
    return figures


def measure(links: int, keys: Keys, sizes: Sizes) -> Fleet:
    """The hub idle with no link and with ``links``, then starts on random links."""
    with common.served_workspace("bench-fleet-hub") as hub, hub.client() as client:
        local.create_flow(client, "noop", local.NOOP_SCRIPT)
        local.create_flow(client, "fleet_parent", PARENT_SCRIPT)
        time.sleep(SETTLE_S)
        empty = watch(hub.process.pid, sizes.idle_s)
        with edge_process(hub, links, keys) as edges:
            asyncio.run(pair(hub, links, keys))
            edges.wait_for("created", timeout_s=EDGE_EVENT_TIMEOUT_S + links * 0.2)
            began = time.perf_counter()
            edges.command("start")
            edges.wait_for("started", timeout_s=EDGE_EVENT_TIMEOUT_S + links * 0.1)
            wait_connected(client, links, edges)
            connect_s = time.perf_counter() - began
            time.sleep(SETTLE_S)
            linked = watch(hub.process.pid, sizes.idle_s)
            edge_usage = common.usage_of(common.tree_pids(edges.process.pid))
            starts_ms = start_latencies_ms(client, links, sizes.starts)
            in_flow_ms = in_flow_latencies_ms(client, links, sizes.starts)
            load = os.getloadavg()[0]
    return Fleet(links, empty, linked, connect_s, starts_ms, in_flow_ms, edge_usage, load)


def hub_config_name(index: int) -> str:
    return f"edge-{index:04d}"


def edge_config_name(index: int) -> str:
    return f"hub-{index:04d}"


async def pair(hub: common.Workspace, links: int, keys: Keys) -> None:
    """The hub's half of every link: controlling, listening, trusting the edges' key."""

    async def create(indexes: range) -> None:
        async with hub.async_client() as client:
            for index in indexes:
                config = {
                    "name": hub_config_name(index),
                    "role": "controlling",
                    "own_private_key": keys.hub_private,
                    "remote_public_key": keys.edge_public,
                }
                (await client.post("/sync_config", json=config)).raise_for_status()

    shares = [range(i, links, PAIRING_CLIENTS) for i in range(PAIRING_CLIENTS)]
    await asyncio.gather(*(create(share) for share in shares))


class Edges:
    """The running edges process: commands on its stdin, events read from its stdout."""

    def __init__(self, process: subprocess.Popen[str], log_path: Path) -> None:
        self.process = process
        self._log_path = log_path
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # closed by stop_process meanwhile
            for line in self.process.stdout:
                with contextlib.suppress(ValueError):
                    self._events.put(json.loads(line))
        self._events.put(None)  # it ended

    def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, event: str, timeout_s: float) -> dict[str, Any]:
        """The next event named ``event``; raises if the process ends or stays silent."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                got = self._events.get(timeout=left)
            except queue.Empty:
                break
            if got is None:
                raise RuntimeError(f"the edges process ended early:\n{self.log_tail()}")
            if got.get("event") == event:
                return got
        raise RuntimeError(f"the edges process did not report {event!r}:\n{self.log_tail()}")

    def states(self) -> dict[str, int]:
        """How many of the edges' sync configs are in each link state."""
        self.command("status")
        return dict(self.wait_for("status", EDGE_EVENT_TIMEOUT_S)["states"])

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log_path.read_text().splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def edge_process(hub: common.Workspace, links: int, keys: Keys) -> Iterator[Edges]:
    """The edges process with ``links`` controlled sync configs; stopped and removed after."""
    work_dir = Path(tempfile.mkdtemp(prefix="tether-bench-fleet-"))
    process: subprocess.Popen[str] | None = None
    try:
        (work_dir / "edge.pem").write_text(keys.edge_private)
        (work_dir / "hub.pub").write_text(keys.hub_public)
        sync_url = f"{hub.api_url}/sync_config/{{}}/sync"
        plan = [
            {"name": edge_config_name(i), "remote_url": sync_url.format(hub_config_name(i))}
            for i in range(links)
        ]
        (work_dir / "links.json").write_text(json.dumps(plan))
        log_path = work_dir / "edges.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, str(EDGES_SCRIPT), "--work-dir", str(work_dir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,  # its own process group, with its fork server
            )
        yield Edges(process, log_path)
    finally:
        if process is not None:
            common.stop_process(process, "the fleet's edges")
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
        shutil.rmtree(work_dir, ignore_errors=True)


def wait_connected(client: httpx.Client, links: int, edges: Edges) -> None:
    """Wait until the hub shows every one of its ``links`` sync configs connected."""
    deadline = time.monotonic() + 60 + links * 0.2
    # listing 1,000 sync configs is work for the hub too: ask less often the more there are
    poll_s = min(3.0, max(0.5, links / 300))
    states: Counter[str] = Counter()
    while time.monotonic() < deadline:
        answer = client.get("/sync_config")
        answer.raise_for_status()
        states = Counter(config["state"] for config in answer.json())
        if states["connected"] == links:
            return
        time.sleep(poll_s)
    raise RuntimeError(
        f"only {states['connected']} of {links} links connected on the hub ({dict(states)}); "
        f"on the edges: {edges.states()}\n{edges.log_tail()}"
    )


def watch(server_pid: int, seconds: int) -> Idle:
    """Sample the server's process tree once a second for ``seconds`` seconds."""
    pids = common.tree_pids(server_pid)
    started = time.monotonic()
    samples = []
    for tick in range(seconds + 1):
        time.sleep(max(0.0, started + tick - time.monotonic()))
        samples.append(common.usage_of(pids))
    return Idle(samples)


def start_latencies_ms(client: httpx.Client, links: int, starts: int) -> list[float]:
    """From POST /execution on a random link to the hub showing it ended, one at a time."""
    chooser = random.Random(links)
    durations = []
    for index in range(WARMUP_STARTS + starts):
        body = {
            "flow_name": "noop",
            "remote_workspace_name": hub_config_name(chooser.randrange(links)),
        }
        began = time.perf_counter()
        answer = client.post("/execution", json=body)
        record = wait_ended(client, answer.raise_for_status().json()["id"])
        elapsed_ms = (time.perf_counter() - began) * 1000
        if record["status"] != "ENDED_SUCCESS":
            raise RuntimeError(f"a remote noop ended {record['status']}: {record['message']}")
        if index >= WARMUP_STARTS:
            durations.append(elapsed_ms)
    return durations


def in_flow_latencies_ms(client: httpx.Client, links: int, calls: int) -> list[float]:
    """`this.flow('noop', remote_workspace_name=<random link>)` timed inside a hub flow.

    The engine wakes the waiting parent on the update itself: no polling, no REST API.
    """
    names = [hub_config_name(index) for index in range(links)]
    inputs = {"seed": links, "names": names, "warmup": WARMUP_STARTS, "calls": calls}
    answer = client.post("/execution", json={"flow_name": "fleet_parent", "input_value": inputs})
    parent = local.wait_ended(client, answer.raise_for_status().json()["id"], 60 + calls)
    if parent["status"] != "ENDED_SUCCESS":
        raise RuntimeError(f"the fleet's parent execution failed: {parent['message']}")
    return [float(d) for d in parent["output_value"]["durations_ms"]]


def wait_ended(client: httpx.Client, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        record: dict[str, Any] = client.get(f"/execution/{execution_id}").raise_for_status().json()
        if record["status"] in local.ENDED:
            return record
        time.sleep(POLL_S)
    raise RuntimeError(f"remote execution {execution_id} did not end within {START_TIMEOUT_S:g} s")


def fleet_figures(fleet: Fleet, baseline_ms: float) -> list[common.Figure]:
    """The hub's idle cost beside its empty self, then the latency of a start on a link."""
    return hub_cost_figures(fleet) + latency_figures(fleet, baseline_ms)


def hub_cost_figures(fleet: Fleet) -> list[common.Figure]:
    """Memory, idle CPU and open files of the hub with N links and with none."""
    label, n = f"{NAME} {fleet.links}", fleet.links
    empty_mb = common.percentile(fleet.empty.rss_mb, 50)
    per_link_mb = (common.percentile(fleet.linked.rss_mb, 50) - empty_mb) / n
    empty_cpu, linked_cpu = fleet.empty.cpu_s_per_window, fleet.linked.cpu_s_per_window
    watched = f"{len(fleet.linked.samples) - 1} s watch"
    renewals = f"each link renews its {HOLD_S:g} s long poll: {n / HOLD_S:.1f} exchanges/s"
    return [
        _memory(label, "hub RSS, 0 links", fleet.empty, "server + fork server + its spare child"),
        _memory(label, f"hub RSS, {n} links", fleet.linked, "every link connected and idle"),
        common.Figure(
            label,
            "hub memory per link",
            "MB",
            per_link_mb,
            note=f"(RSS with {n} - with 0) / {n}; target under {MEMORY_TARGET_MB:g} MB at 1,000 "
            f"links (issue 5): {common.verdict(per_link_mb < MEMORY_TARGET_MB)}",
        ),
        _cpu(label, "hub CPU per 10 s idle, 0 links", fleet.empty, watched),
        _cpu(label, f"hub CPU per 10 s idle, {n} links", fleet.linked, f"{watched}; {renewals}"),
        common.Figure(
            label,
            "hub CPU per link per 10 s idle",
            "ms",
            (linked_cpu - empty_cpu) * 1000 / n,
            note=f"(CPU with {n} - with 0) / {n}",
        ),
        common.Figure(
            label,
            "hub open files",
            "fds",
            float(fleet.linked.samples[-1].fds),
            note=f"with 0 links: {fleet.empty.samples[-1].fds}; one socket per held long poll",
        ),
    ]


def latency_figures(fleet: Fleet, baseline_ms: float) -> list[common.Figure]:
    """How long linking took, and a start on a random link from the API and from a flow."""
    label, n = f"{NAME} {fleet.links}", fleet.links
    p99_ms = common.percentile(fleet.starts_ms, 99)
    in_flow_p99_ms = common.percentile(fleet.in_flow_ms, 99)
    load = f"load average {fleet.load:.1f} on {os.cpu_count()} CPUs"
    return [
        common.Figure(
            label,
            "all links connected after",
            "s",
            fleet.connect_s,
            note="from the edges' linker starting to the hub listing every link connected",
        ),
        common.latency_figure(
            label,
            "start latency, random link",
            fleet.starts_ms,
            baseline_ms,
            f"POST /execution (noop) until GET shows it ENDED (polled every {POLL_S * 1000:g} ms), "
            f"one at a time; {load}; target p99 under {LATENCY_TARGET_MS:g} ms (issue 5): "
            f"{common.verdict(p99_ms < LATENCY_TARGET_MS)}",
        ),
        common.latency_figure(
            label,
            "remote child round trip, random link",
            fleet.in_flow_ms,
            baseline_ms,
            "this.flow('noop', remote_workspace_name=<random link>) timed in a hub flow: no "
            f"polling; {load}; p99 under {LATENCY_TARGET_MS:g} ms: "
            f"{common.verdict(in_flow_p99_ms < LATENCY_TARGET_MS)}",
        ),
        common.Figure(
            label,
            "edges process RSS per link",
            "MB",
            fleet.edges.rss_mb / n,
            note=f"the simulated controlled side: {fleet.edges.rss_mb:.0f} MB for {n} dialers",
        ),
    ]


def _memory(label: str, name: str, idle: Idle, note: str) -> common.Figure:
    values = idle.rss_mb
    return common.Figure(
        label,
        name,
        "MB",
        common.percentile(values, 50),
        common.percentile(values, 99),
        len(values),
        None,
        note,
    )


def _cpu(label: str, name: str, idle: Idle, note: str) -> common.Figure:
    """CPU seconds per 10 s: the mean over the watch, and (as p99) its worst 10 s window."""
    return common.Figure(
        label,
        name,
        "s",
        idle.cpu_s_per_window,
        idle.worst_window_cpu_s,
        len(idle.samples) - 1,
        None,
        f"{note}; p99 column: the worst 10 s window",
    )
