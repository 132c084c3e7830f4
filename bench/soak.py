"""Soak: remote executions through a proxy that drops every link connection every few seconds.

Counts executions lost and run twice, and how long an end takes to reach the controlling side.
Drives two real `tether serve` processes through their REST APIs; never imports the engine.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from tests.support.faultproxy import FaultProxy
from tests.support.history import MARKED_FLOW, MARKED_SCRIPT, expected_output

from bench import common, local, remote

NAME = "soak"
STARTERS = 4  # concurrent API clients starting executions
POLL_S = 0.05
SETTLE_TIMEOUT_S = 120.0  # after the last start, how long to wait for stragglers


@dataclass(frozen=True)
class Sizes:
    """How much one run of the soak does, per dial direction."""

    executions: int = 1000
    rate: float = 100.0  # executions started per second
    drop_every_s: float = 3.0  # mean time between cuts of every connection


@dataclass
class Tally:
    """What one soak saw: when each execution was first seen ended on the controlling side."""

    started: list[str] = field(default_factory=list)
    failed_starts: int = 0
    seen_ended: dict[str, float] = field(default_factory=dict)  # id -> wall time first seen
    drops: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Outcome:
    """The verdict of one soak: lost, duplicated, and convergence times."""

    requested: int
    lost: list[str]
    duplicated: list[str]
    convergence_ms: list[float]
    drops: int
    elapsed_s: float


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Soak each dial direction on a fresh pair of workspaces, and report both."""
    figures: list[common.Figure] = []
    for direction in remote.DIRECTIONS:
        outcome = soak(direction, sizes)
        print_outcome(direction, outcome)
        figures += outcome_figures(direction, sizes, outcome, baseline_ms)
    return figures


def soak(direction: remote.Direction, sizes: Sizes) -> Outcome:
    """Start ``sizes.executions`` remote executions while the proxy drops connections; judge them."""
    with proxied_pair(direction) as (pair, proxy):
        return marked_run(pair, proxy, sizes)


def marked_run(pair: remote.Linked, proxy: FaultProxy, sizes: Sizes) -> Outcome:
    """Start remote executions that mark each run, with the proxy's faults as set, plus a cut
    of every connection about every ``sizes.drop_every_s`` (0: none); judge each one."""
    with (
        tempfile.TemporaryDirectory(prefix="tether-soak-", dir=common.FLOW_WRITABLE) as markers_dir,
        pair.hub.client() as client,
    ):
        if client.get(f"/flow/{MARKED_FLOW}").status_code == 404:
            local.create_flow(client, MARKED_FLOW, MARKED_SCRIPT)
        markers = Path(markers_dir) / "markers"
        tally = Tally()
        started_at = time.monotonic()
        stop = threading.Event()
        threads = [threading.Thread(target=_watch_ends, args=(pair.hub, tally, stop), daemon=True)]
        if sizes.drop_every_s:
            drops = threading.Thread(target=_drop_every, args=(proxy, sizes, stop, tally))
            threads.append(drops)
        for thread in threads:
            thread.start()
        try:
            _start_all(pair.hub, sizes, markers, tally)
            _wait_settled(tally)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        elapsed_s = time.monotonic() - started_at
        return judge(pair, client, markers, tally, elapsed_s)


@contextlib.contextmanager
def proxied_pair(
    direction: remote.Direction,
) -> Iterator[tuple[remote.Linked, FaultProxy]]:
    """Two linked workspaces whose dialer reaches the listener only through a FaultProxy."""
    with (
        common.served_workspace("soak-hub") as hub,
        common.served_workspace("soak-edge") as edge,
    ):
        listener = edge if direction.hub_dials else hub
        port = int(listener.url.rsplit(":", 1)[1])
        with FaultProxy("127.0.0.1", port, seed=7) as proxy:
            remote.link(hub, edge, direction, base_url=f"{proxy.url_base}/api/latest")
            remote.wait_connected(hub, remote.HUB_CONFIG)
            remote.wait_connected(edge, remote.EDGE_CONFIG)
            yield remote.Linked(hub, edge), proxy


def _start_all(hub: common.Workspace, sizes: Sizes, markers: Path, tally: Tally) -> None:
    """Start the executions from STARTERS threads, together at ``sizes.rate`` per second."""
    numbers = iter(range(sizes.executions))
    begin = time.monotonic()

    def starter() -> None:
        with hub.client() as client:
            while True:
                with tally.lock:
                    n = next(numbers, None)
                if n is None:
                    return
                time.sleep(max(0.0, begin + n / sizes.rate - time.monotonic()))
                inputs = {"n": n, "markers": str(markers), "sleep_s": 0}
                body = {
                    "flow_name": MARKED_FLOW,
                    "remote_workspace_name": remote.HUB_CONFIG,
                    "input_value": inputs,
                }
                try:
                    answer = client.post("/execution", json=body)
                    answer.raise_for_status()
                except httpx.HTTPError:
                    with tally.lock:
                        tally.failed_starts += 1
                    continue
                with tally.lock:
                    tally.started.append(answer.json()["id"])

    threads = [threading.Thread(target=starter, daemon=True) for _ in range(STARTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _drop_every(proxy: FaultProxy, sizes: Sizes, stop: threading.Event, tally: Tally) -> None:
    """Cut every connection through the proxy at jittered intervals until stopped."""
    rng = random.Random(11)
    while not stop.wait(rng.uniform(0.5, 1.5) * sizes.drop_every_s):
        proxy.cut_all()
        tally.drops += 1


def _watch_ends(hub: common.Workspace, tally: Tally, stop: threading.Event) -> None:
    """Note the wall time at which each started execution is first seen ended on the hub."""
    with hub.client() as client:
        while not stop.is_set():
            with tally.lock:
                candidates = [i for i in tally.started if i not in tally.seen_ended]
            # Listed after the candidates were taken, so a start answered meanwhile is not
            # mistaken for ended: it is not among the candidates yet.
            unended = {r["id"] for r in _not_ended(client)}
            now = time.time()
            with tally.lock:
                for execution_id in candidates:
                    if execution_id not in unended:
                        tally.seen_ended[execution_id] = now
            stop.wait(POLL_S)


def _not_ended(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for status in ("QUEUED", "RUNNING"):
        offset = 0
        while True:
            params: dict[str, str | int] = {"status": status, "limit": local.PAGE}
            params["offset"] = offset
            page = client.get("/execution", params=params).json()
            found += page
            offset += len(page)
            if len(page) < local.PAGE:
                break
    return found


def _wait_settled(tally: Tally) -> None:
    """Wait until every started execution was seen ended, or no progress for a long time."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        with tally.lock:
            if len(tally.seen_ended) >= len(tally.started):
                return
        time.sleep(POLL_S)


def judge(
    pair: remote.Linked, hub: httpx.Client, markers: Path, tally: Tally, elapsed_s: float
) -> Outcome:
    """Lost: requested and not ended with a clean run's outputs on both sides, or never ran.

    Duplicated: ran more than once (markers), or received more than once by the edge.
    """
    children = {r["id"]: r for r in _all_executions(hub)}
    with pair.edge.client() as edge:
        received = Counter(
            r["remote_execution_id"] for r in _all_executions(edge) if r["origin"] == "received"
        )
    runs = Counter(line.split()[1] for line in markers.read_text().splitlines())
    lost = []
    for execution_id in tally.started:
        child = children.get(execution_id)
        if (
            child is None
            or child["status"] != "ENDED_SUCCESS"
            or child["output_value"] != expected_output(child["input_value"]["n"])
            or runs[execution_id] == 0
            or received[execution_id] == 0
        ):
            lost.append(execution_id)
    duplicated = sorted(
        {i for i, count in runs.items() if count > 1}
        | {i for i, count in received.items() if count > 1}
    )
    convergence_ms = [
        (seen - datetime.fromisoformat(children[i]["ended_at"]).timestamp()) * 1000
        for i, seen in tally.seen_ended.items()
        if i in children and children[i]["ended_at"] is not None
    ]
    return Outcome(len(tally.started), lost, duplicated, convergence_ms, tally.drops, elapsed_s)


def _all_executions(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        params = {"limit": local.PAGE, "offset": len(found)}
        page = client.get("/execution", params=params).json()
        found += page
        if len(page) < local.PAGE:
            return found


def print_outcome(direction: remote.Direction, outcome: Outcome) -> None:
    p50 = statistics.median(outcome.convergence_ms) if outcome.convergence_ms else float("nan")
    p99 = common.percentile(outcome.convergence_ms, 99) if outcome.convergence_ms else float("nan")
    print(
        f"{direction.label} soak: {outcome.requested} remote executions, {outcome.drops} drops "
        f"in {outcome.elapsed_s:.1f} s: lost {len(outcome.lost)}, duplicated "
        f"{len(outcome.duplicated)}, convergence p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


def outcome_figures(
    direction: remote.Direction, sizes: Sizes, outcome: Outcome, baseline_ms: float
) -> list[common.Figure]:
    label = f"{NAME} {direction.key}"
    setting = (
        f"{outcome.requested} started at {sizes.rate:g}/s; every connection cut about every "
        f"{sizes.drop_every_s:g} s ({outcome.drops} cuts); {direction.description}"
    )
    figures = [
        common.Figure(label, "lost executions", "n", len(outcome.lost), note=setting),
        common.Figure(label, "duplicated executions", "n", len(outcome.duplicated), note=setting),
    ]
    if outcome.convergence_ms:
        figures.append(
            common.latency_figure(
                label,
                "convergence: ended on the edge to seen ended on the hub",
                outcome.convergence_ms,
                baseline_ms,
                f"polled every {POLL_S * 1000:g} ms",
            )
        )
    return figures
