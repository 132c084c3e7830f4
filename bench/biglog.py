"""Big logs: a remote execution writes 100 MB of log lines; the controlling side gets them all.

Both dial directions, each on one pair of workspaces whose dialer reaches the listener through
the fault proxy (passing everything, no delay), which counts the bytes on the wire. The
baseline, measured in the same run on the same hub: the same flow run locally.

Figures: MB/s of the log arriving complete and in order at the controlling side (from the
start request to the execution's end there, whose update carries the last entries), log
bytes per byte on the wire, and each `tether serve` process's RSS peak above its idle.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.faultproxy import FaultProxy

from bench import common, local, remote, soak

NAME = "biglog"
RATE_TARGET_MB_S = 20.0  # issue 19: the log streams at 20 MB/s or more on loopback
MEMORY_TARGET_MB = 50.0  # issue 19: neither side's memory grows by more than 50 MB
MB = 1_000_000
SAMPLE_S = 0.05  # how often the memory sampler reads /proc
IDLE_S = 1.0  # the idle RSS: sampled for this long before the start
LOG_PAGE = 10_000  # entries per GET of the log (the API's largest page)
# Lines of words from a fixed vocabulary, 1,000 different ones in turn (2 MB of them at the
# default size, far more than deflate's 32 KiB window): about as compressible as real logs,
# unlike one line repeated. Each begins with its number, so that order can be checked.
SCRIPT = """\
import random


def handler(system, this, inputs):
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(400)]
    width = inputs["line_bytes"] - 11
    pool = []
    for _ in range(1000):
        text = ""
        while len(text) < width:
            text += rng.choice(words) + rng.choice(" ,.:=/")
        pool.append(text[:width])
    for n in range(inputs["lines"]):
        print(f"{n:010d} {pool[n % 1000]}")
"""


@dataclass(frozen=True)
class Sizes:
    """How much log one execution writes, and in lines of what size."""

    megabytes: float = 100.0
    line_bytes: int = 2000  # 500 of them fill an update's 1 MiB, its two bounds at once

    @property
    def lines(self) -> int:
        return max(1, round(self.megabytes * MB / self.line_bytes))

    @property
    def log_bytes(self) -> int:
        return self.lines * self.line_bytes


@dataclass
class Peaks:
    """RSS of some processes sampled from /proc in a thread: the idle median and the peak."""

    pids: dict[str, int]
    idle_mb: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)

    def growth_mb(self, name: str) -> float:
        return self.peak_mb[name] - self.idle_mb[name]


@dataclass(frozen=True)
class Outcome:
    elapsed_s: float
    wire_bytes: int | None
    peaks: Peaks
    cpu_s: dict[str, float]  # per workspace: its serve process and everything below it


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    figures: list[common.Figure] = []
    for direction in remote.DIRECTIONS:
        with soak.proxied_pair(direction) as (pair, proxy):
            with pair.hub.client() as client:
                local.create_flow(client, "biglog", SCRIPT)
                pids = {"hub": pair.hub.process.pid, "edge": pair.edge.process.pid}
                here = _one_run(client, sizes, pids, remote_name=None, proxy=None)
                there = _one_run(client, sizes, pids, remote_name=remote.HUB_CONFIG, proxy=proxy)
            figures += _figures(f"{NAME} {direction.key}", sizes, here, there)
    return figures


def _one_run(
    client: httpx.Client,
    sizes: Sizes,
    pids: dict[str, int],
    *,
    remote_name: str | None,
    proxy: FaultProxy | None,
) -> Outcome:
    """Start the flow (locally, or in the linked workspace), wait for its end, check its log."""
    inputs = {"lines": sizes.lines, "line_bytes": sizes.line_bytes}
    body = {"flow_name": "biglog", "input_value": inputs, "remote_workspace_name": remote_name}
    timeout_s = 120 + sizes.megabytes * 3
    with _sampled(pids) as peaks:
        wire_before = proxy.bytes_passed if proxy else 0
        cpu_before = {name: common.cpu_s_of_tree(pid) for name, pid in pids.items()}
        start = time.perf_counter()
        answer = client.post("/execution", json=body).raise_for_status().json()
        record = local.wait_ended(client, answer["id"], timeout_s)
        elapsed_s = time.perf_counter() - start
        cpu_s = {name: common.cpu_s_of_tree(pid) - cpu_before[name] for name, pid in pids.items()}
        wire = proxy.bytes_passed - wire_before if proxy else None
    if record["status"] != "ENDED_SUCCESS":
        raise RuntimeError(f"the big-log execution failed: {record['message']}")
    check_log(client, answer["id"], sizes)
    return Outcome(elapsed_s, wire, peaks, cpu_s)


def check_log(client: httpx.Client, execution_id: str, sizes: Sizes) -> None:
    """Every line there, each once and in order, whole.

    Raises:
        RuntimeError: the first entry that is missing, out of place, or cut.
    """
    seen = 0
    while True:
        page = client.get(
            f"/execution/{execution_id}/log", params={"offset": seen, "limit": LOG_PAGE}
        ).raise_for_status()
        entries = page.json()
        for entry in entries:
            text = entry["message"]
            if text[:10] != f"{seen:010d}" or len(text) != sizes.line_bytes:
                raise RuntimeError(
                    f"log entry {seen} of {execution_id} is {text[:40]!r}... ({len(text)} "
                    f"characters): lines are missing, out of order or cut"
                )
            seen += 1
        if len(entries) < LOG_PAGE:
            break
    if seen != sizes.lines:
        raise RuntimeError(f"the log of {execution_id} has {seen} lines, not {sizes.lines}")


@contextmanager
def _sampled(pids: dict[str, int]) -> Iterator[Peaks]:
    """Sample the RSS of ``pids`` for IDLE_S (the idle), then until the block ends (the peak)."""
    peaks = Peaks(pids)
    idle: dict[str, list[float]] = {name: [] for name in pids}
    deadline = time.monotonic() + IDLE_S
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            idle[name].append(rss_mb(pid))
        time.sleep(SAMPLE_S)
    peaks.idle_mb = {name: statistics.median(values) for name, values in idle.items()}
    peaks.peak_mb = dict(peaks.idle_mb)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_S):
            for name, pid in pids.items():
                peaks.peak_mb[name] = max(peaks.peak_mb[name], rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        stop.set()
        sampler.join()


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB (10^6 bytes); 0 once it is gone."""
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    return 0.0


def _figures(label: str, sizes: Sizes, here: Outcome, there: Outcome) -> list[common.Figure]:
    megabytes = sizes.log_bytes / MB
    local_rate = megabytes / here.elapsed_s
    remote_rate = megabytes / there.elapsed_s
    what = f"{sizes.lines} lines of {sizes.line_bytes} bytes ({megabytes:g} MB)"
    figures = [
        common.Figure(
            label, "log MB/s, local run (baseline)", "MB/s", local_rate, note=f"{what}, same hub"
        ),
        common.Figure(
            label,
            "log MB/s at the controlling side",
            "MB/s",
            remote_rate,
            note=f"{what}, from the start request until the end with the last line there, "
            f"all checked in order; target {RATE_TARGET_MB_S:g} MB/s: "
            f"{common.verdict(remote_rate >= RATE_TARGET_MB_S)}",
        ),
        common.comparison_figure(
            label, "remote / local log rate", remote_rate, local_rate, "same flow, same run"
        ),
    ]
    assert there.wire_bytes is not None
    figures.append(
        common.Figure(
            label,
            "log bytes per byte on the wire",
            "x",
            sizes.log_bytes / there.wire_bytes,
            note=f"{there.wire_bytes / MB:.1f} MB passed the proxy both ways, HTTP and "
            "envelopes included; above 1: compressed",
        )
    )
    for name in ("hub", "edge"):
        figures.append(
            common.Figure(
                label,
                f"{name} CPU s per log MB, remote run",
                "s/MB",
                there.cpu_s[name] / megabytes,
                note=f"{there.cpu_s[name]:.1f} s of CPU in {there.elapsed_s:.1f} s, the serve "
                "process and its children (the flow's own child on the edge)",
            )
        )
    figures.append(
        common.Figure(
            label,
            "hub CPU s per log MB, local run (baseline)",
            "s/MB",
            here.cpu_s["hub"] / megabytes,
            note=f"{here.cpu_s['hub']:.1f} s of CPU in {here.elapsed_s:.1f} s",
        )
    )
    for name in ("hub", "edge"):
        growth = there.peaks.growth_mb(name)
        figures.append(
            common.Figure(
                label,
                f"{name} serve RSS growth, remote run",
                "MB",
                growth,
                note=f"peak {there.peaks.peak_mb[name]:.0f} MB above the idle "
                f"{there.peaks.idle_mb[name]:.0f} MB (the serve process; the flow's own child "
                f"not counted); target at most {MEMORY_TARGET_MB:g} MB: "
                f"{common.verdict(growth <= MEMORY_TARGET_MB)}",
            )
        )
    figures.append(
        common.Figure(
            label,
            "hub serve RSS growth, local run (baseline)",
            "MB",
            here.peaks.growth_mb("hub"),
            note="the same log written on the hub itself",
        )
    )
    return figures
