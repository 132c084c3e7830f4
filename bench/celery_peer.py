"""The peer: Celery 5 on a private Redis, measured in the same run, and our figures divided by its.

Celery lives in the bench's own environment (bench/.venv-peers, made on first use), never in
the project's; Redis comes from the system's packages. Both are stopped after, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import common, remote

NAME = "celery"
BENCH_DIR = Path(__file__).parent
PEERS_VENV = BENCH_DIR / ".venv-peers"
REQUIREMENT = "celery[redis]>=5,<6"
APP_FILE = "celery_app.py"
WORKER_CONCURRENCY = 2  # prefork, one process per core of the 2-core machine
# Celery's own way to give each task a fresh process, as tether gives each execution: the
# pool replaces a process after one task. Slow enough that it gets small sizes of its own.
PROCESS_PER_TASK = ("--max-tasks-per-child", "1")
START_TIMEOUT_S = 30.0
ROUND_TRIP_TARGET = 2.0  # issue 5: our round trip at most 2x Celery's
RATE_TARGET = 0.5  # issue 5: our rate at least half of Celery's


class Skipped(Exception):
    """The peer cannot be measured on this machine; the message says why and what to do."""


@dataclass(frozen=True)
class Sizes:
    """How much work one run of this benchmark does."""

    calls: int = 200
    tasks: int = 5000
    rounds: int = 3
    # the same worker with a process per task: about 30 s at these sizes (measured here, a
    # task often waits seconds for its replacement process)
    isolated_calls: int = 10
    isolated_tasks: int = 50


def run(sizes: Sizes, baseline_ms: float, ours: Sequence[common.Figure]) -> list[common.Figure]:
    """Measure Celery, then divide ``ours`` (the remote benchmark's figures, if run) by it."""
    try:
        python = peers_python()
        measured, isolated = measure(python, sizes)
    except Skipped as exc:
        print(f"skipping {NAME}: {exc}", file=sys.stderr, flush=True)
        return [common.Figure(NAME, "skipped", "-", None, note=str(exc))]
    pool = f"prefork worker, concurrency {WORKER_CONCURRENCY}"
    trip, rate = peer_figures(measured, baseline_ms, sizes.tasks, "", pool)
    isolated_pool = f"the same worker with {' '.join(PROCESS_PER_TASK)}"
    isolated_trip, isolated_rate = peer_figures(
        isolated, baseline_ms, sizes.isolated_tasks, ", a process per task", isolated_pool
    )
    return [
        trip,
        rate,
        isolated_trip,
        isolated_rate,
        *compare(ours, trip, rate),
        *compare(ours, isolated_trip, isolated_rate, " with a process per task", is_target=False),
    ]


def peer_figures(
    measured: dict[str, list[float]], baseline_ms: float, tasks: int, suffix: str, pool: str
) -> tuple[common.Figure, common.Figure]:
    """Celery's round trip and rate from one driver run."""
    return (
        common.latency_figure(
            NAME,
            f"task round trip{suffix}",
            measured["round_trips_ms"],
            baseline_ms,
            f"add.delay(1, 2).get(), Redis broker; {pool}",
        ),
        common.rate_figure(
            NAME,
            f"tasks per second{suffix}",
            measured["rates"],
            baseline_ms,
            f"{tasks} sent at once, until all results were ready; {pool}",
        ),
    )


def compare(
    ours: Sequence[common.Figure],
    trip: common.Figure,
    rate: common.Figure,
    suffix: str = "",
    *,
    is_target: bool = True,
) -> list[common.Figure]:
    """Our remote figures / Celery's, per dial direction; a note if remote was not run.

    ``is_target``: these are the figures issue 5 sets targets against (else context).
    """
    by_name = {(f.benchmark, f.name): f for f in ours}
    figures = []
    trip_note = f"target at most {ROUND_TRIP_TARGET:g} (issue 5)" if is_target else "no target"
    rate_note = f"target at least {RATE_TARGET:g} (issue 5)" if is_target else "no target"
    for direction in remote.DIRECTIONS:
        our_trip = by_name.get((direction.label, "remote child round trip"))
        our_rate = by_name.get((direction.label, "remote executions per second"))
        if our_trip is None or our_rate is None:
            continue
        # all four measured: a figure with no median (None) has no place in a comparison
        assert our_trip.median is not None and trip.median is not None, (our_trip, trip)
        assert our_rate.median is not None and rate.median is not None, (our_rate, rate)
        figures += [
            common.comparison_figure(
                NAME,
                f"{direction.label} round trip / Celery's{suffix}",
                our_trip.median,
                trip.median,
                f"medians; {trip_note}",
            ),
            common.comparison_figure(
                NAME,
                f"{direction.label} executions/s / Celery's tasks/s{suffix}",
                our_rate.median,
                rate.median,
                f"medians; {rate_note}",
            ),
        ]
    if not figures:
        note = f"run the {remote.NAME} benchmark in the same run to compare"
        figures.append(common.Figure(NAME, f"ours / Celery's{suffix}", "x", None, note=note))
    return figures


def peers_python() -> Path:
    """The Python of bench/.venv-peers, with Celery installed; made on first use."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == REQUIREMENT:
        return python
    print(f"installing {REQUIREMENT} into {PEERS_VENV} ...", file=sys.stderr, flush=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, REQUIREMENT], check=True)
    except subprocess.CalledProcessError as exc:
        raise Skipped(
            f"could not install {REQUIREMENT} into {PEERS_VENV} ({exc}): check access to PyPI, "
            f"or remove {PEERS_VENV} and try again"
        ) from exc
    stamp.write_text(REQUIREMENT)
    return python


def measure(python: Path, sizes: Sizes) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Serve Redis; run the driver against the default worker, then against one with a
    process per task; stop everything after."""
    with tempfile.TemporaryDirectory(prefix="tether-bench-celery-") as tmp:
        directory = Path(tmp)
        # the worker and the driver import the app from their working directory, and nothing
        # else of bench/ (whose modules need the project's environment)
        shutil.copy(BENCH_DIR / APP_FILE, directory / APP_FILE)
        with served_redis(directory) as redis_url:
            with celery_worker(python, redis_url, directory, ()):
                default = run_driver(
                    python, redis_url, directory, (sizes.calls, sizes.tasks, sizes.rounds)
                )
            with celery_worker(python, redis_url, directory, PROCESS_PER_TASK):
                isolated = run_driver(
                    python, redis_url, directory, (sizes.isolated_calls, sizes.isolated_tasks, 1)
                )
    return default, isolated


def run_driver(
    python: Path, redis_url: str, directory: Path, counts: tuple[int, int, int]
) -> dict[str, list[float]]:
    """The driver times Celery from its own process, in the bench's Celery environment.

    ``counts``: round trips, tasks per burst, bursts.
    """
    calls, tasks, rounds = counts
    done = subprocess.run(
        [str(python), APP_FILE, str(calls), str(tasks), str(rounds)],
        cwd=directory,
        env=peer_env(redis_url),
        capture_output=True,
        text=True,
        # a process per task runs about 10 tasks/s and takes about 150 ms a round trip
        timeout=120 + calls + rounds * tasks / 5,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the Celery driver failed:\n{done.stdout}{done.stderr}")
    figures: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def peer_env(redis_url: str) -> dict[str, str]:
    """A small environment for the peer's processes: nothing of the project's venv leaks in."""
    return {
        "PATH": "/usr/bin:/bin",
        "BENCH_CELERY_REDIS_URL": redis_url,
        "LANG": "C.UTF-8",
    }


@contextlib.contextmanager
def served_redis(directory: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port, without persistence; its URL."""
    server = shutil.which("redis-server")
    if server is None:
        raise Skipped("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--daemonize", "no", "--dir", str(directory)]
    process = spawn(command, directory, None)
    output = drain(process)
    try:
        wait_redis(port, process, output)
        yield f"redis://127.0.0.1:{port}"
    finally:
        common.stop_process(process, "redis-server")


@contextlib.contextmanager
def celery_worker(
    python: Path, redis_url: str, directory: Path, options: Sequence[str]
) -> Iterator[None]:
    """A Celery worker, prefork with ``WORKER_CONCURRENCY`` processes and ``options``;
    stopped after."""
    command = [str(python), "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(WORKER_CONCURRENCY), "--loglevel", "WARNING", *options]
    command += ["--hostname", f"bench-{time.monotonic_ns()}@localhost"]
    process = spawn(command, directory, peer_env(redis_url))
    output = drain(process)
    try:
        time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError("the Celery worker did not start:\n" + "".join(output))
        yield
    finally:
        common.stop_process(process, "the Celery worker")


def spawn(command: list[str], cwd: Path, env: dict[str, str] | None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: Ctrl-C reaches us, we stop it
    )


def drain(process: subprocess.Popen[str]) -> list[str]:
    """Collect the process's output in the background so that a full pipe never blocks it."""
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_redis(port: int, process: subprocess.Popen[str], output: list[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not answer:\n" + "".join(output))
