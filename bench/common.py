"""Shared benchmark helpers: figures and percentiles, the table, the baseline, a served workspace.

Measures and prints only; nothing here judges a figure good or bad.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ADMIN_PASSWORD = "bench-admin-password"
SERVING = re.compile(r"serving on (https?://\S+)")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
LINGER_S = 2.0
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# The one directory (besides their own scratch) that the benchmarks' flows may write.
FLOW_WRITABLE = Path(tempfile.mkdtemp(prefix="tether-bench-writable-"))
FLOW_WRITABLE.chmod(0o1777)
atexit.register(shutil.rmtree, FLOW_WRITABLE, ignore_errors=True)


@dataclass(frozen=True)
class Figure:
    """One measured figure: a median, optionally a p99, and its cost relative to the baseline."""

    benchmark: str
    name: str
    unit: str
    median: float | None  # None: not measured (the note says why)
    p99: float | None = None
    samples: int = 1
    ratio: float | None = None  # time cost per item / the baseline's median; below 1 is cheaper
    note: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolating between ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values to take a percentile of")
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_figure(
    benchmark: str, name: str, values_ms: Sequence[float], baseline_ms: float, note: str = ""
) -> Figure:
    """A figure of durations in ms, with median, p99 and the median's ratio to the baseline."""
    median = statistics.median(values_ms)
    return Figure(
        benchmark,
        name,
        "ms",
        median,
        percentile(values_ms, 99),
        len(values_ms),
        median / baseline_ms,
        note,
    )


def rate_figure(
    benchmark: str, name: str, rates: Sequence[float], baseline_ms: float, note: str = ""
) -> Figure:
    """A figure of rates per second; the ratio compares the time per item with the baseline."""
    median = statistics.median(rates)
    ratio = (1000 / median) / baseline_ms
    slowest = f"slowest of {len(rates)}: {min(rates):.1f}/s"
    note = f"{note}; {slowest}" if note else slowest
    return Figure(benchmark, name, "/s", median, None, len(rates), ratio, note)


def comparison_figure(benchmark: str, name: str, ours: float, theirs: float, note: str) -> Figure:
    """One figure divided by another measured in the same run (unit ``x``, no baseline ratio)."""
    return Figure(benchmark, name, "x", ours / theirs, None, 1, None, note)


def difference_figure(benchmark: str, name: str, ours: float, theirs: float, note: str) -> Figure:
    """One figure less another measured in the same run, in ms (no baseline ratio)."""
    return Figure(benchmark, name, "ms", ours - theirs, None, 1, None, note)


def verdict(is_met: bool) -> str:
    """How a note reports a target: met or missed (never a failure: see README)."""
    return "met" if is_met else "missed"


def python_start_ms(executable: str, runs: int) -> list[float]:
    """Wall times in ms of ``executable -c pass``, run ``runs`` times one after another."""
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([executable, "-c", "pass"], check=True)
        durations.append((time.perf_counter() - start) * 1000)
    return durations


def measure_baseline(runs: int) -> tuple[float, list[Figure]]:
    """The baseline (median start of this interpreter) and its figures, PATH's python3 too."""
    own = python_start_ms(sys.executable, runs)
    baseline_ms = statistics.median(own)
    figures = [latency_figure("baseline", "python -c pass", own, baseline_ms, sys.executable)]
    on_path = shutil.which("python3")
    if on_path and os.path.realpath(on_path) != os.path.realpath(sys.executable):
        found = python_start_ms(on_path, runs)
        figures.append(latency_figure("baseline", "python3 on PATH", found, baseline_ms, on_path))
    return baseline_ms, figures


def print_table(figures: Sequence[Figure]) -> None:
    """Print the figures as an aligned plain-text table."""
    header = ("benchmark", "figure", "median", "p99", "unit", "n", "x baseline", "note")
    rows = [header] + [_row(f) for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def _row(figure: Figure) -> tuple[str, ...]:
    return (
        figure.benchmark,
        figure.name,
        "-" if figure.median is None else _number(figure.median),
        "-" if figure.p99 is None else _number(figure.p99),
        figure.unit,
        str(figure.samples),
        "-" if figure.ratio is None else f"{figure.ratio:.3f}",
        figure.note,
    )


def _number(value: float) -> str:
    return f"{value:.1f}" if value >= 100 else f"{value:.3f}"


@dataclass
class Workspace:
    """A running `tether serve` and an admin token for its API."""

    process: subprocess.Popen[str]
    data_dir: Path
    url: str
    token: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return self.url + "/api/latest"

    def client(self, **kwargs: object) -> httpx.Client:
        """A blocking API client that sends the admin token."""
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def async_client(self, **kwargs: object) -> httpx.AsyncClient:
        """An asyncio API client that sends the admin token."""
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def served_workspace(
    name: str = "bench", *extra_args: str, prepare: Callable[[Path], None] | None = None
) -> Iterator[Workspace]:
    """A fresh workspace on a free loopback port; always stopped and its data dir removed.

    ``prepare`` receives the empty data directory before the server starts (to seed its store).
    """
    data_dir = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    process: subprocess.Popen[str] | None = None
    try:
        if prepare is not None:
            prepare(data_dir)
        process = _spawn_serve(name, data_dir, extra_args)
        workspace = Workspace(process, data_dir, url="")
        workspace.url = _read_url(process, workspace.output)
        _drain(process, workspace.output)
        _wait_healthy(workspace.api_url)
        workspace.token = _login(workspace.api_url)
        yield workspace
    finally:
        if process is not None:
            stop_process(process, "tether serve")
        shutil.rmtree(data_dir, ignore_errors=True)


def _spawn_serve(name: str, data_dir: Path, extra_args: Sequence[str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tether.cli", "serve", "--data-dir", str(data_dir)]
    command += ["--name", name, "--port", "0", *extra_args]
    return subprocess.Popen(
        command,
        env={
            **os.environ,
            "TETHER_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "TETHER_SANDBOX_WRITABLE": str(FLOW_WRITABLE),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so that stopping reaches every child
    )


def _read_url(process: subprocess.Popen[str], output: list[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    for line in process.stdout:
        output.append(line)
        match = SERVING.search(line)
        if match:
            return match.group(1)
        if time.monotonic() > deadline:
            break
    raise RuntimeError("tether serve did not report its URL:\n" + "".join(output))


def _drain(process: subprocess.Popen[str], output: list[str]) -> None:
    """Keep reading the server's output so that a full pipe never blocks it."""

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)

    threading.Thread(target=pump, daemon=True).start()


def _wait_healthy(api_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(api_url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the workspace at {api_url} never became healthy")


def _login(api_url: str) -> str:
    credentials = {"user_name": "admin", "password": ADMIN_PASSWORD}
    answer = httpx.post(api_url + "/auth/login", json=credentials, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["token"])


def stop_process(process: subprocess.Popen[str], what: str) -> None:
    """SIGTERM, then SIGKILL to its process group and to any descendant that lingers.

    ``process`` must lead its own process group (started with ``start_new_session=True``).
    """
    descendants = descendants_of(process.pid)
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdout is not None:
        process.stdout.close()
    _kill_lingering(descendants, what)


def descendants_of(pid: int) -> set[int]:
    """The pids of every live process below ``pid`` (the fork server and its children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                # the command name may hold spaces and parentheses; fields follow the last ')'
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@dataclass(frozen=True)
class Usage:
    """What a group of processes holds and has spent, read from /proc."""

    rss_mb: float  # VmRSS summed (pages shared after a fork count in each process)
    cpu_s: float  # user + system time summed
    fds: int  # open file descriptors summed


def tree_pids(pid: int) -> set[int]:
    """``pid`` and every live process below it (a server, its fork server, their children)."""
    return {pid} | descendants_of(pid)


def usage_of(pids: Iterable[int]) -> Usage:
    """RSS, CPU time and open fds of ``pids`` together; a process gone meanwhile counts 0."""
    rss_kb, ticks, fds = 0, 0, 0
    for pid in pids:
        proc = Path("/proc") / str(pid)
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(stat[11]) + int(stat[12])  # fields 14 and 15: utime, stime
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
            fds += len(os.listdir(proc / "fd"))
    return Usage(rss_kb / 1024, ticks / TICKS_PER_S, fds)


def cpu_s_of_tree(pid: int) -> float:
    """User + system seconds of ``pid``'s live tree, with those of the children it reaped.

    Sampled before and after some work, the difference is the work's CPU, also that of the
    processes which began and ended meanwhile (their time moves to the parent that reaps them).
    """
    ticks = 0
    for member in tree_pids(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (Path("/proc") / str(member) / "stat").read_text().rsplit(")", 1)[1].split()
            ticks += sum(int(value) for value in stat[11:15])  # utime, stime, cutime, cstime
    return ticks / TICKS_PER_S


def _kill_lingering(pids: set[int], what: str) -> None:
    """Wait briefly for ``pids`` to go, then SIGKILL the rest; orphans would skew later runs."""
    deadline = time.monotonic() + LINGER_S
    pids = {pid for pid in pids if _is_alive(pid)}
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = {pid for pid in pids if _is_alive(pid)}
    for pid in pids:
        print(f"killing process {pid} left behind by {what}", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _is_alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
