"""The local engine: child execution round trip and executions per second of one workspace.

Measured with the sandbox on and, in the same run, off, to show what it costs. Drives real
`tether serve` processes through their REST API; never imports the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import httpx

from bench import common

NAME = "local"
WARMUP_CALLS = 5
POLL_S = 0.05  # coarse enough that polling does not load the server it measures
ENDED = ("ENDED_SUCCESS", "ENDED_ERROR", "ENDED_CANCELLED")
NOT_ENDED = ("QUEUED", "RUNNING", "PENDING", "PAUSED")  # likeliest first: any() stops early
PAGE = 1000  # the list endpoint's largest page
SANDBOX_MODES = ("on", "off")
SANDBOX_TARGET_MS = 0.3  # issue 14: what the sandbox may add to the median child round trip
TURNS = "a workspace served with --sandbox off, taking turns with the one above"

NOOP_SCRIPT = "def handler(system, this):\n    return None\n"
PARENT_SCRIPT = """\
import time


def handler(system, this, inputs):
    remote = inputs.get("remote_workspace_name")  # None: a local child
    for _ in range(inputs["warmup"]):
        this.flow("noop", remote_workspace_name=remote)
    durations_ms = []
    for _ in range(inputs["calls"]):
        start = time.perf_counter()
        this.flow("noop", remote_workspace_name=remote)
        durations_ms.append((time.perf_counter() - start) * 1000)
    this.save(output_value={"durations_ms": durations_ms})
"""
FAN_OUT_SCRIPT = """\
import time


def handler(system, this, inputs):
    remote = inputs.get("remote_workspace_name")
    start = time.perf_counter()
    children = [
        this.flow("noop", wait=False, remote_workspace_name=remote) for _ in range(inputs["count"])
    ]
    this.wait_for(*children, return_when=system.return_when.ALL_ENDED)
    this.save(output_value={"seconds": time.perf_counter() - start})
"""


@dataclass(frozen=True)
class Sizes:
    """How much work one run of this benchmark does."""

    calls: int = 200
    executions: int = 500
    rounds: int = 3
    clients: int = 4


@dataclass
class Bursts:
    """What ``rounds`` bursts measured: rates per burst and every execution's latency."""

    rates: list[float] = field(default_factory=list)
    submit_rates: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class Side:
    """One of the two workspaces (sandbox on or off) and what was measured in it."""

    mode: str
    workspace: common.Workspace
    client: httpx.Client
    trips_ms: list[float] = field(default_factory=list)
    trips_cpu_s: float = 0.0  # the workspace's processes, over its round trips
    calls_made: int = 0  # the timed calls and the warm-ups
    bursts: Bursts = field(default_factory=Bursts)


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Serve a workspace with the sandbox on and one with it off, measure both, stop them."""
    with contextlib.ExitStack() as stack:
        on, off = (serve_side(stack, mode) for mode in SANDBOX_MODES)
        measure_sides((on, off), sizes)
        rates = fan_out_rates(on.client, sizes)
    note = f"{sizes.executions} started at once by one flow (wait=False), until all ended"
    return [
        *round_trip_figures(on, off, baseline_ms),
        *burst_figures(on, off, sizes, baseline_ms),
        common.rate_figure(
            NAME, "executions per second, started by a flow", rates, baseline_ms, note
        ),
    ]


def serve_side(stack: contextlib.ExitStack, mode: str) -> Side:
    """A workspace served with ``--sandbox mode`` (checked in /health), with its flows."""
    workspace = stack.enter_context(
        common.served_workspace(f"bench-local-{mode}", "--sandbox", mode)
    )
    client = stack.enter_context(workspace.client())
    reported = client.get("/health").raise_for_status().json().get("sandbox")
    if reported != mode:
        raise RuntimeError(f"a workspace served with --sandbox {mode} reports {reported!r}")
    create_flow(client, "noop", NOOP_SCRIPT)
    create_flow(client, "parent", PARENT_SCRIPT)
    return Side(mode, workspace, client)


def measure_sides(sides: tuple[Side, ...], sizes: Sizes) -> None:
    """Round trips, then bursts, taking turns between the sides so that both see one load.

    The machine is shared (two cores, other work): measuring one side after the other would
    put a change of load into the difference.
    """
    for calls in shares(sizes.calls, sizes.rounds):
        for side in sides:
            before_s = common.cpu_s_of_tree(side.workspace.process.pid)
            side.trips_ms += round_trips_ms(side.client, calls)
            side.trips_cpu_s += common.cpu_s_of_tree(side.workspace.process.pid) - before_s
            side.calls_made += calls + WARMUP_CALLS
    for index in range(sizes.rounds):
        for side in sides:
            add_burst(side.workspace, side.client, sizes, f"burst{index}", side.bursts)


def shares(total: int, parts: int) -> list[int]:
    """``total`` shared out as evenly as can be over at most ``parts`` (none empty)."""
    return [n for n in (len(range(i, total, parts)) for i in range(parts)) if n]


def round_trip_figures(on: Side, off: Side, baseline_ms: float) -> list[common.Figure]:
    """Both sides' child round trips, and what the sandbox adds: difference and ratio."""
    trip_on, trip_off = statistics.median(on.trips_ms), statistics.median(off.trips_ms)
    is_met = trip_on - trip_off <= SANDBOX_TARGET_MS
    target = f"target at most {SANDBOX_TARGET_MS:g} ms (issue 14): {common.verdict(is_met)}"
    call = f"this.flow('noop') timed inside the parent, after {WARMUP_CALLS} warm-up calls"
    return [
        common.latency_figure(NAME, "child round trip", on.trips_ms, baseline_ms, call),
        common.latency_figure(
            NAME, "child round trip, sandbox off", off.trips_ms, baseline_ms, TURNS
        ),
        common.difference_figure(
            NAME, "sandbox cost, child round trip", trip_on, trip_off, f"medians; {target}"
        ),
        common.comparison_figure(
            NAME, "sandbox on / off, child round trip", trip_on, trip_off, "medians"
        ),
        *cpu_figures(on, off),
    ]


def cpu_figures(on: Side, off: Side) -> list[common.Figure]:
    """CPU per round trip on each side: on a loaded machine, steadier than the wall time."""
    per_call_ms = [side.trips_cpu_s * 1000 / side.calls_made for side in (on, off)]
    how = (
        "CPU of the server, fork server and children during the round trips (the parents' "
        "warm-ups and starts included) / calls; 10 ms ticks"
    )
    return [
        common.Figure(NAME, "CPU per child round trip", "ms", per_call_ms[0], note=how),
        common.Figure(
            NAME, "CPU per child round trip, sandbox off", "ms", per_call_ms[1], note=TURNS
        ),
        common.difference_figure(
            NAME, "sandbox CPU cost, child round trip", per_call_ms[0], per_call_ms[1], "on - off"
        ),
    ]


def burst_figures(on: Side, off: Side, sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Both sides' executions per second and what the sandbox costs there; the on side's rest."""
    rate_on, rate_off = statistics.median(on.bursts.rates), statistics.median(off.bursts.rates)
    started = f"{sizes.executions} started over the API by {sizes.clients} clients"
    return [
        common.rate_figure(
            NAME,
            "executions per second",
            on.bursts.rates,
            baseline_ms,
            f"{started}, until all ended",
        ),
        common.rate_figure(
            NAME, "executions per second, sandbox off", off.bursts.rates, baseline_ms, TURNS
        ),
        common.difference_figure(
            NAME,
            "sandbox cost per execution, burst",
            1000 / rate_on,
            1000 / rate_off,
            "1000 / median executions per second, on - off",
        ),
        common.comparison_figure(
            NAME, "sandbox on / off, executions per second", rate_on, rate_off, "medians"
        ),
        common.rate_figure(NAME, "starts accepted per second", on.bursts.submit_rates, baseline_ms),
        common.latency_figure(
            NAME,
            "created to ended, in a burst",
            on.bursts.latencies_ms,
            baseline_ms,
            "server timestamps",
        ),
    ]


def fan_out_rates(client: httpx.Client, sizes: Sizes, remote: str | None = None) -> list[float]:
    """Executions per second when one flow starts ``sizes.executions`` children at once."""
    if client.get("/flow/fan_out").status_code == 404:
        create_flow(client, "fan_out", FAN_OUT_SCRIPT)
    rates = []
    for _ in range(sizes.rounds):
        inputs = {"count": sizes.executions, "remote_workspace_name": remote}
        answer = client.post("/execution", json={"flow_name": "fan_out", "input_value": inputs})
        parent = wait_ended(client, answer.raise_for_status().json()["id"], timeout_s=120)
        if parent["status"] != "ENDED_SUCCESS":
            raise RuntimeError(f"the fan-out execution failed: {parent['message']}")
        rates.append(sizes.executions / float(parent["output_value"]["seconds"]))
    return rates


def create_flow(client: httpx.Client, name: str, script: str) -> None:
    client.post("/flow", json={"name": name, "script": script}).raise_for_status()


def round_trips_ms(client: httpx.Client, calls: int, remote: str | None = None) -> list[float]:
    """Durations of ``calls`` child executions started by the flow `parent` (in ``remote``)."""
    inputs = {"calls": calls, "warmup": WARMUP_CALLS, "remote_workspace_name": remote}
    answer = client.post("/execution", json={"flow_name": "parent", "input_value": inputs})
    answer.raise_for_status()
    parent = wait_ended(client, answer.json()["id"], timeout_s=60 + calls)
    if parent["status"] != "ENDED_SUCCESS":
        raise RuntimeError(f"the parent execution failed: {parent['message']}")
    return [float(d) for d in parent["output_value"]["durations_ms"]]


def wait_ended(client: httpx.Client, execution_id: str, timeout_s: float) -> dict[str, Any]:
    """The execution's record once it has ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record: dict[str, Any] = client.get(f"/execution/{execution_id}").raise_for_status().json()
        if record["status"] in ENDED:
            return record
        time.sleep(POLL_S)
    raise RuntimeError(f"execution {execution_id} did not end within {timeout_s:g} s")


def run_bursts(
    workspace: common.Workspace,
    client: httpx.Client,
    sizes: Sizes,
    prefix: str,
    remote: str | None = None,
) -> Bursts:
    """Run ``sizes.rounds`` bursts, each of a new flow named ``prefix<i>`` (in ``remote``)."""
    bursts = Bursts()
    for index in range(sizes.rounds):
        add_burst(workspace, client, sizes, f"{prefix}{index}", bursts, remote)
    return bursts


def add_burst(
    workspace: common.Workspace,
    client: httpx.Client,
    sizes: Sizes,
    flow_name: str,
    bursts: Bursts,
    remote: str | None = None,
) -> None:
    """Run one burst of a new flow ``flow_name`` (in ``remote``) and add it to ``bursts``."""
    create_flow(client, flow_name, NOOP_SCRIPT)
    body = {"flow_name": flow_name, "remote_workspace_name": remote}
    wall_s, submit_s = burst(workspace, client, body, sizes)
    bursts.rates.append(sizes.executions / wall_s)
    bursts.submit_rates.append(sizes.executions / submit_s)
    bursts.latencies_ms += end_latencies_ms(client, flow_name, sizes.executions)


def burst(
    workspace: common.Workspace, client: httpx.Client, body: dict[str, Any], sizes: Sizes
) -> tuple[float, float]:
    """Start the executions from several clients; seconds until all started and all ended."""
    start = time.perf_counter()
    asyncio.run(start_all(workspace, body, sizes))
    submit_s = time.perf_counter() - start
    ended_at = wait_all_ended(client, body["flow_name"], sizes.executions)
    return ended_at - start, submit_s


async def start_all(workspace: common.Workspace, body: dict[str, Any], sizes: Sizes) -> None:
    """Start ``sizes.executions`` executions, shared out over ``sizes.clients`` connections.

    The client is aiohttp's, not httpx's: on the 2-core machine the bench shares with the
    servers it measures, an httpx request cost about 2.5 ms of CPU and an aiohttp one about
    0.3 ms, and a heavy client takes the CPU from the servers (Celery's driver is light too).
    """
    headers = {"Authorization": f"Bearer {workspace.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(
            *(
                start_executions(session, workspace.api_url, body, n)
                for n in shares(sizes.executions, sizes.clients)
            )
        )


async def start_executions(
    session: aiohttp.ClientSession, api_url: str, body: dict[str, Any], count: int
) -> None:
    """Start ``count`` executions one after another (one connection each, reused)."""
    for _ in range(count):
        async with session.post(api_url + "/execution", json=body) as answer:
            if answer.status != 201:
                raise RuntimeError(
                    f"POST /execution answered {answer.status}: {await answer.text()}"
                )


def wait_all_ended(client: httpx.Client, flow_name: str, count: int) -> float:
    """Poll the list endpoint by status until no execution of ``flow_name`` is left unended.

    Returns the ``time.perf_counter()`` at which none was; counting them all comes after.
    """
    deadline = time.monotonic() + 60 + count / 5
    while time.monotonic() < deadline:
        if not any(list_page(client, flow_name, status, 1) for status in NOT_ENDED):
            ended_at = time.perf_counter()
            ended = sum(count_status(client, flow_name, status) for status in ENDED)
            if ended != count:
                raise RuntimeError(f"{ended} of {count} executions of {flow_name} were found")
            return ended_at
        time.sleep(POLL_S)
    raise RuntimeError(f"the executions of {flow_name} did not all end in time")


def list_page(
    client: httpx.Client, flow_name: str, status: str, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    params: dict[str, str | int] = {
        "flow_name": flow_name,
        "status": status,
        "limit": limit,
        "offset": offset,
    }
    page: list[dict[str, Any]] = client.get("/execution", params=params).raise_for_status().json()
    return page


def count_status(client: httpx.Client, flow_name: str, status: str) -> int:
    return len(list_all(client, flow_name, status))


def list_all(client: httpx.Client, flow_name: str, status: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while page := list_page(client, flow_name, status, PAGE, len(found)):
        found += page
        if len(page) < PAGE:
            break
    return found


def end_latencies_ms(client: httpx.Client, flow_name: str, count: int) -> list[float]:
    """Created-to-ended times of the burst's executions, from the server's own timestamps."""
    records = list_all(client, flow_name, "ENDED_SUCCESS")
    if len(records) != count:
        raise RuntimeError(f"only {len(records)} of {count} executions of {flow_name} succeeded")
    return [span_ms(r["created_at"], r["ended_at"]) for r in records]


def span_ms(start: str, end: str) -> float:
    return (_parse(end) - _parse(start)).total_seconds() * 1000


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
