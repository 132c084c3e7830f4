"""Idle cost of one workspace: memory and CPU of `tether serve` and its fork server with no work.

Reads /proc only; beside it, a bare interpreter sleeping over the same window is the baseline.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench import common

NAME = "idle"
SETTLE_S = 2.0  # let start-up work (migrations, first housekeeping rounds) finish first
SAMPLE_S = 1.0
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
ZYGOTE = "tether.runner.zygote"


@dataclass(frozen=True)
class Sizes:
    """How long the workspace is watched."""

    seconds: int = 10


@dataclass
class Watch:
    """Per-second samples of one group of processes: resident MB each, CPU ms per second."""

    rss_mb: dict[str, list[float]]
    cpu_ms_per_s: list[float]


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Serve an idle workspace, watch it beside a sleeping bare interpreter, and stop both."""
    bare = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True
    )
    try:
        with common.served_workspace("bench-idle") as workspace:
            time.sleep(SETTLE_S)
            groups = {
                "workspace": workspace_pids(workspace.process.pid),
                "bare": {"bare": bare.pid},
            }
            watches = watch(groups, sizes.seconds)
    finally:
        bare.kill()
        bare.wait()
    return figures(watches["workspace"], watches["bare"])


def workspace_pids(server_pid: int) -> dict[str, int]:
    """The server, its fork server, and any other process below it, by role."""
    pids = {"server": server_pid}
    for index, pid in enumerate(sorted(common.descendants_of(server_pid))):
        role = "fork server" if ZYGOTE in command_line(pid) else f"other {index}"
        pids[role] = pid
    if "fork server" not in pids:
        raise RuntimeError("the workspace's fork server was not found below its server process")
    return pids


def watch(groups: dict[str, dict[str, int]], seconds: int) -> dict[str, Watch]:
    """Sample RSS and CPU time of every group once a second for ``seconds`` seconds."""
    watches = {name: Watch({role: [] for role in pids}, []) for name, pids in groups.items()}
    last = {name: cpu_ticks(pids.values()) for name, pids in groups.items()}
    started = time.monotonic()
    for tick in range(1, seconds + 1):
        time.sleep(max(0.0, started + tick * SAMPLE_S - time.monotonic()))
        for name, pids in groups.items():
            ticks = cpu_ticks(pids.values())
            watches[name].cpu_ms_per_s.append((ticks - last[name]) * 1000 / TICKS_PER_S)
            last[name] = ticks
            for role, pid in pids.items():
                watches[name].rss_mb[role].append(rss_mb(pid))
    return watches


def figures(ours: Watch, bare: Watch) -> list[common.Figure]:
    """Memory as multiples of the bare interpreter's; CPU beside the bare interpreter's."""
    bare_rss = statistics.median(bare.rss_mb["bare"])
    totals = [sum(values) for values in zip(*ours.rss_mb.values(), strict=True)]
    result = [_memory(f"RSS, {role}", values, bare_rss) for role, values in ours.rss_mb.items()]
    result.append(_memory("RSS, all processes", totals, bare_rss))
    result.append(_cpu("CPU, all processes", ours.cpu_ms_per_s))
    result.append(_memory("RSS, bare python (baseline)", bare.rss_mb["bare"], bare_rss))
    result.append(_cpu("CPU, bare python (baseline)", bare.cpu_ms_per_s))
    return result


def _memory(name: str, values: list[float], bare_mb: float) -> common.Figure:
    median = statistics.median(values)
    note = f"{median / bare_mb:.1f} x a bare python sleeping ({bare_mb:.1f} MB)"
    return common.Figure(
        NAME, name, "MB", median, common.percentile(values, 99), len(values), None, note
    )


def _cpu(name: str, per_second: list[float]) -> common.Figure:
    """CPU ms per wall second: the mean over the window, and the p99 of its 1 s windows."""
    total_ms, seconds = sum(per_second), len(per_second) * SAMPLE_S
    note = (
        f"{total_ms:.0f} ms CPU in {seconds:g} s; /proc counts in {1000 / TICKS_PER_S:g} ms ticks"
    )
    return common.Figure(
        NAME,
        name,
        "ms/s",
        total_ms / seconds,
        common.percentile(per_second, 99),
        len(per_second),
        None,
        note,
    )


def cpu_ticks(pids: Iterable[int]) -> int:
    """User plus system CPU time of ``pids``, in clock ticks (fields 14 and 15 of stat)."""
    total = 0
    for pid in pids:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # after the name, field 14 is index 11
    return total


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (VmRSS)."""
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"process {pid} has no VmRSS (has it ended?)")


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
