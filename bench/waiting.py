"""Thousands waiting: memory, API reads and one cancel of many executions each in this.sleep.

Drives real `tether serve` processes (sandbox on) through their REST API and reads /proc for
memory; never imports the engine. The second part waits on one link: many remote executions
sleep in the linked workspace while a new remote round trip is timed against one before.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import common, local, remote

NAME = "waiting"
REMOTE_NAME = "waiting remote"
MEMORY_TARGET_MB = 2.0  # issue 19: PSS of the whole tree above idle, per running execution
READ_TARGET_MS = 50.0  # issue 19: API reads under this at p99 while they run
CANCEL_TARGET_S = 10.0  # issue 19: one cancel of all of them ends every one within this
REMOTE_TARGET = 2.0  # issue 19: a new remote round trip within 2x of the one before
SLEEP_S = 3600  # far longer than any run: only the cancel (or the stop) ends them
SETTLE_S = 2.0  # after start-up and after the last start, before memory is read
POLL_S = 0.25
# Every limit at its default (--max-running 16 among them): a sleeping execution holds no
# slot, so thousands run without raising one.
SERVE_ARGS = ("--sandbox", "on")
START_TIMEOUT_S = 600.0
GONE_TIMEOUT_S = 60.0
CPU_NOTE = "user + system time of the workspace's tree over the round trips / calls; 10 ms ticks"
READS = (
    ("GET /execution?limit=100", "/execution", {"limit": 100}),
    ("GET /execution/{id}", None, None),  # the path names one running execution
    ("GET /health", "/health", None),
)

SLEEPER_SCRIPT = f"def handler(system, this):\n    this.sleep({SLEEP_S})\n"
# One parent starts them all (wait=False) and sleeps too: cancelling it cancels its tree,
# which is how a user stops a whole fan-out at once.
FAN_SCRIPT = f"""\
def handler(system, this, inputs):
    for _ in range(inputs["count"]):
        this.flow("sleeper", wait=False, remote_workspace_name=inputs.get("remote"))
    this.sleep({SLEEP_S})
"""


@dataclass(frozen=True)
class Sizes:
    """How many executions wait, locally and over one link, and how many reads are timed."""

    executions: int = 3000
    remote: int = 1000
    reads: int = 200
    calls: int = 50


@dataclass(frozen=True)
class Memory:
    """PSS in MB of a workspace's processes, by role, read from /proc/PID/smaps_rollup."""

    server: float
    fork_server: float
    children: list[float] = field(default_factory=list)
    private_children: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.server + self.fork_server + sum(self.children)


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Both parts, each on fresh workspaces stopped after."""
    return [*run_local(sizes, baseline_ms), *run_remote(sizes, baseline_ms)]


def run_local(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """N sleeping executions in one workspace: memory, reads beside idle ones, one cancel."""
    with (
        common.served_workspace("bench-waiting", *SERVE_ARGS) as workspace,
        workspace.client() as client,
    ):
        local.create_flow(client, "sleeper", SLEEPER_SCRIPT)
        local.create_flow(client, "probe", SLEEPER_SCRIPT)
        local.create_flow(client, "fan", FAN_SCRIPT)
        probe = start(client, "probe", {})
        wait_status(client, "probe", "RUNNING", 1)
        idle_reads = time_reads(client, probe, sizes.reads)
        cancel_and_wait(client, probe, "probe", 1)
        time.sleep(SETTLE_S)
        # after one execution: the runner has forked its spare child, which stays
        idle_memory = memory_of(workspace)
        idle_children = len(children_of(workspace))
        started = time.perf_counter()
        parent = start(client, "fan", {"count": sizes.executions})
        wait_status(client, "sleeper", "RUNNING", sizes.executions)
        start_s = time.perf_counter() - started
        time.sleep(SETTLE_S)
        busy_memory = memory_of(workspace)
        one = local.list_page(client, "sleeper", "RUNNING", 1)[0]["id"]
        busy_reads = time_reads(client, one, sizes.reads)
        cancelled_at = time.perf_counter()
        cancel_s, answer_s = cancel_and_wait(client, parent, "sleeper", sizes.executions)
        gone_s = wait_children_gone(workspace, idle_children, cancelled_at)
    return [
        common.rate_figure(
            NAME,
            "executions started to RUNNING per second",
            [sizes.executions / start_s],
            baseline_ms,
            f"{sizes.executions} started by one flow (wait=False), each in this.sleep",
        ),
        *memory_figures(idle_memory, busy_memory, sizes.executions),
        *read_figures(idle_reads, busy_reads, sizes.executions, baseline_ms),
        *cancel_figures(cancel_s, answer_s, gone_s, sizes.executions),
    ]


def start(client: httpx.Client, flow_name: str, inputs: dict[str, Any]) -> str:
    body = {"flow_name": flow_name, "input_value": inputs}
    return str(client.post("/execution", json=body).raise_for_status().json()["id"])


def wait_status(client: httpx.Client, flow_name: str, status: str, count: int) -> None:
    """Wait until ``count`` executions of ``flow_name`` have ``status``."""
    deadline = time.monotonic() + START_TIMEOUT_S
    found = 0
    while time.monotonic() < deadline:
        found = local.count_status(client, flow_name, status)
        if found >= count:
            return
        failed = local.list_page(client, flow_name, "ENDED_ERROR", 1)
        if failed:
            raise RuntimeError(f"an execution of {flow_name} failed: {failed[0]['message']}")
        time.sleep(POLL_S)
    raise RuntimeError(f"only {found} of {count} executions of {flow_name} became {status}")


def cancel_and_wait(
    client: httpx.Client, parent: str, flow_name: str, count: int
) -> tuple[float, float]:
    """Cancel ``parent`` (and so its tree): seconds until every execution of ``flow_name``
    has ended, and until the cancel request was answered."""
    started = time.perf_counter()
    client.post(f"/execution/{parent}/cancel").raise_for_status()
    answered = time.perf_counter() - started
    return local.wait_all_ended(client, flow_name, count) - started, answered


def wait_children_gone(workspace: common.Workspace, idle_children: int, since: float) -> float:
    """Seconds from ``since`` (a perf_counter) until the fork server has no more children
    than when idle (the spare forked ahead of need)."""
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while len(children_of(workspace)) > idle_children:
        if time.monotonic() > deadline:
            raise RuntimeError("the cancelled executions' processes did not end")
        time.sleep(0.05)
    return time.perf_counter() - since


def time_reads(client: httpx.Client, execution_id: str, reads: int) -> dict[str, list[float]]:
    """Durations in ms of ``reads`` of each API read, taking turns between them."""
    durations: dict[str, list[float]] = {name: [] for name, _, _ in READS}
    for _ in range(reads):
        for name, path, params in READS:
            url = path or f"/execution/{execution_id}"
            begun = time.perf_counter()
            client.get(url, params=params).raise_for_status()
            durations[name].append((time.perf_counter() - begun) * 1000)
    return durations


def memory_of(workspace: common.Workspace) -> Memory:
    """PSS of the server, its fork server and each of the fork server's children."""
    server_pid = workspace.process.pid
    fork_server = fork_server_of(server_pid)
    rollups = [_rollup(pid) for pid in common.descendants_of(fork_server)]
    return Memory(
        _rollup(server_pid).get("Pss", 0) / 1024,
        _rollup(fork_server).get("Pss", 0) / 1024,
        [r.get("Pss", 0) / 1024 for r in rollups if r],
        [(r.get("Private_Dirty", 0) + r.get("Private_Clean", 0)) / 1024 for r in rollups if r],
    )


def fork_server_of(server_pid: int) -> int:
    """The server's fork server (its children run the same command line, one level down)."""
    for pid in common.descendants_of(server_pid):
        if "tether.runner.zygote" in _command_line(pid) and _parent_of(pid) == server_pid:
            return pid
    raise RuntimeError("the workspace's fork server was not found below its server process")


def _parent_of(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def children_of(workspace: common.Workspace) -> set[int]:
    """Every process below the fork server (the executions' children and what they started)."""
    return common.descendants_of(fork_server_of(workspace.process.pid))


def _rollup(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/smaps_rollup; empty for a process gone meanwhile."""
    fields: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in (Path("/proc") / str(pid) / "smaps_rollup").read_text().splitlines()[1:]:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[-1] == "kB":
                fields[name] = int(parts[0])
    return fields


def _command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def memory_figures(idle: Memory, busy: Memory, count: int) -> list[common.Figure]:
    """The whole tree's PSS above idle per execution, and where it went, by role."""
    per_execution = (busy.total - idle.total) / count
    target = f"target at most {MEMORY_TARGET_MB:g} MB (issue 19): "
    target += common.verdict(per_execution <= MEMORY_TARGET_MB)
    children = busy.children or [0.0]
    return [
        common.Figure(
            NAME,
            "PSS per sleeping execution, whole tree above idle",
            "MB",
            per_execution,
            note=f"({busy.total:.0f} - {idle.total:.0f} MB) / {count}; {target}",
        ),
        common.Figure(
            NAME,
            "PSS of one sleeping child",
            "MB",
            statistics.median(children),
            common.percentile(children, 99),
            len(children),
            note="the fork server's children, from /proc/PID/smaps_rollup",
        ),
        common.Figure(
            NAME,
            "private memory of one sleeping child",
            "MB",
            statistics.median(busy.private_children or [0.0]),
            common.percentile(busy.private_children or [0.0], 99),
            len(busy.private_children),
            note="Private_Clean + Private_Dirty: what the child does not share with its siblings",
        ),
        common.Figure(
            NAME,
            "server PSS added per sleeping execution",
            "kB",
            (busy.server - idle.server) * 1024 / count,
            note=f"the tether serve process: {idle.server:.0f} MB idle, {busy.server:.0f} MB busy",
        ),
        common.Figure(
            NAME,
            "fork server PSS, busy",
            "MB",
            busy.fork_server,
            note=f"{idle.fork_server:.1f} MB idle; shares its pages with every child",
        ),
    ]


def read_figures(
    idle: dict[str, list[float]], busy: dict[str, list[float]], count: int, baseline_ms: float
) -> list[common.Figure]:
    """Each read while they sleep, and idle, and the ratio of the p99s."""
    figures = []
    for name, _, _ in READS:
        p99 = common.percentile(busy[name], 99)
        target = f"target p99 under {READ_TARGET_MS:g} ms (issue 19): "
        target += common.verdict(p99 < READ_TARGET_MS)
        figures += [
            common.latency_figure(
                NAME, f"{name}, {count} sleeping", busy[name], baseline_ms, target
            ),
            common.latency_figure(
                NAME, f"{name}, idle", idle[name], baseline_ms, "one sleeping execution"
            ),
            common.comparison_figure(
                NAME,
                f"{name}, sleeping / idle p99",
                p99,
                common.percentile(idle[name], 99),
                "same run, same client",
            ),
        ]
    return figures


def cancel_figures(
    cancel_s: float, answer_s: float, gone_s: float, count: int
) -> list[common.Figure]:
    """One cancel of the parent: until all ended, and until their processes were gone."""
    target = f"target under {CANCEL_TARGET_S:g} s (issue 19): "
    target += common.verdict(cancel_s < CANCEL_TARGET_S)
    return [
        common.Figure(
            NAME,
            f"one cancel to {count} ended",
            "s",
            cancel_s,
            note=f"POST /execution/{{parent}}/cancel until none unended; {target}",
        ),
        common.Figure(
            NAME,
            f"one cancel of {count}, request answered",
            "s",
            answer_s,
            note="the cancel's own transaction: every execution of the tree marked",
        ),
        common.Figure(
            NAME,
            f"one cancel to {count} processes gone",
            "s",
            gone_s,
            note="until the fork server had no children but its spare",
        ),
    ]


def run_remote(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """A remote round trip before and while ``sizes.remote`` remote executions sleep."""
    with linked_pair() as (hub, edge), hub.client() as client:
        for name, script in (
            ("noop", local.NOOP_SCRIPT),
            ("parent", local.PARENT_SCRIPT),
            ("sleeper", SLEEPER_SCRIPT),
            ("fan", FAN_SCRIPT),
        ):
            local.create_flow(client, name, script)
        before, cpu_before = timed_trips(client, (hub, edge), sizes.calls)
        started = time.perf_counter()
        start(client, "fan", {"count": sizes.remote, "remote": remote.HUB_CONFIG})
        wait_status(client, "sleeper", "RUNNING", sizes.remote)
        start_s = time.perf_counter() - started
        during, cpu_during = timed_trips(client, (hub, edge), sizes.calls)
        with edge.client() as edge_client:
            running = local.count_status(edge_client, "sleeper", "RUNNING")
    ratio_note = f"medians; target within {REMOTE_TARGET:g}x (issue 19): "
    ratio_note += common.verdict(
        statistics.median(during) <= REMOTE_TARGET * statistics.median(before)
    )
    return [
        common.rate_figure(
            REMOTE_NAME,
            "remote executions started to RUNNING per second",
            [sizes.remote / start_s],
            baseline_ms,
            f"{sizes.remote} started by one flow over one link; {running} running in the edge",
        ),
        common.latency_figure(
            REMOTE_NAME, "remote child round trip, idle link", before, baseline_ms, "before"
        ),
        common.latency_figure(
            REMOTE_NAME,
            f"remote child round trip, {sizes.remote} waiting",
            during,
            baseline_ms,
            "the same link",
        ),
        *(
            common.Figure(
                REMOTE_NAME, f"{side} CPU per remote round trip, {when}", "ms", cpu, note=CPU_NOTE
            )
            for when, cpus in (("idle link", cpu_before), (f"{sizes.remote} waiting", cpu_during))
            for side, cpu in zip(("hub", "edge"), cpus, strict=True)
        ),
        common.comparison_figure(
            REMOTE_NAME,
            "round trip waiting / idle",
            statistics.median(during),
            statistics.median(before),
            ratio_note,
        ),
    ]


def timed_trips(
    client: httpx.Client, pair: tuple[common.Workspace, common.Workspace], calls: int
) -> tuple[list[float], list[float]]:
    """Remote round trips from the hub's parent flow, and the CPU ms each workspace (hub,
    edge) spent per call (the parent's warm-up calls included)."""
    pids = [workspace.process.pid for workspace in pair]
    before = [common.cpu_s_of_tree(pid) for pid in pids]
    trips = local.round_trips_ms(client, calls, remote=remote.HUB_CONFIG)
    after = [common.cpu_s_of_tree(pid) for pid in pids]
    per_call = [
        (b - a) * 1000 / (calls + local.WARMUP_CALLS) for a, b in zip(before, after, strict=True)
    ]
    return trips, per_call


@contextlib.contextmanager
def linked_pair() -> Iterator[tuple[common.Workspace, common.Workspace]]:
    """A hub dialing an edge, both served with the default limits."""
    with (
        common.served_workspace("bench-hub", *SERVE_ARGS) as hub,
        common.served_workspace("bench-edge", *SERVE_ARGS) as edge,
    ):
        remote.link(hub, edge, remote.DIRECTIONS[0])
        remote.wait_connected(hub, remote.HUB_CONFIG)
        remote.wait_connected(edge, remote.EDGE_CONFIG)
        yield hub, edge
