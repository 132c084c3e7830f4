"""The benchmark suite's front door: `python -m bench` runs every benchmark and records figures.

Prints a table and writes JSON; it never fails on a slow figure, only on a broken benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    backfill,
    biglog,
    celery_peer,
    cluster,
    common,
    fleet,
    idle,
    local,
    remote,
    soak,
    tasks,
    waiting,
    wan,
)

BASELINE_RUNS = 20
RESULTS_DIR = Path(__file__).parent / "results"

# options, the baseline's median in ms, and the figures of the benchmarks run before it
Benchmark = Callable[[argparse.Namespace, float, list[common.Figure]], list[common.Figure]]


def run_local(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    sizes = local.Sizes(calls=options.calls, executions=options.executions)
    return local.run(sizes, baseline_ms)


def run_remote(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    sizes = remote.Sizes(calls=options.calls, executions=options.executions)
    return remote.run(sizes, baseline_ms)


def run_celery(
    options: argparse.Namespace, baseline_ms: float, before: list[common.Figure]
) -> list[common.Figure]:
    sizes = celery_peer.Sizes(calls=options.calls, tasks=options.tasks)
    return celery_peer.run(sizes, baseline_ms, before)


def run_tasks(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    return tasks.run(tasks.Sizes(calls=options.calls), baseline_ms)


def run_idle(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    return idle.run(idle.Sizes(seconds=options.idle_seconds), baseline_ms)


def run_fleet(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    sizes = fleet.Sizes(
        links=options.fleet_sizes, starts=options.fleet_starts, idle_s=options.fleet_idle_seconds
    )
    return fleet.run(sizes, baseline_ms)


def run_backfill(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    return backfill.run(backfill.Sizes(executions=options.backfill_executions), baseline_ms)


def run_cluster(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    sizes = cluster.Sizes(executions=options.cluster_executions, lease_s=options.cluster_lease_s)
    return cluster.run(sizes, baseline_ms)


def run_soak(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    sizes = soak.Sizes(
        executions=options.soak_executions,
        rate=options.soak_rate,
        drop_every_s=options.soak_drop_every_s,
    )
    return soak.run(sizes, baseline_ms)


def run_wan(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    sizes = wan.Sizes(calls=options.wan_calls, executions=options.executions)
    return wan.run(sizes, baseline_ms)


def run_waiting(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    sizes = waiting.Sizes(
        executions=options.waiting_executions,
        remote=options.waiting_remote,
        reads=options.waiting_reads,
        calls=options.waiting_calls,
    )
    return waiting.run(sizes, baseline_ms)


def run_biglog(
    options: argparse.Namespace, baseline_ms: float, _: list[common.Figure]
) -> list[common.Figure]:
    sizes = biglog.Sizes(megabytes=options.biglog_mb, line_bytes=options.biglog_line_bytes)
    return biglog.run(sizes, baseline_ms)


# in this order: the peer's comparison needs the remote figures of the same run
BENCHMARKS: dict[str, Benchmark] = {
    local.NAME: run_local,
    remote.NAME: run_remote,
    wan.NAME: run_wan,
    biglog.NAME: run_biglog,
    celery_peer.NAME: run_celery,
    tasks.NAME: run_tasks,
    idle.NAME: run_idle,
    fleet.NAME: run_fleet,
    backfill.NAME: run_backfill,
    soak.NAME: run_soak,
    cluster.NAME: run_cluster,
    waiting.NAME: run_waiting,
}
# soak is issue 4's, not a speed; cluster needs a PostgreSQL; waiting starts thousands of
# processes and biglog writes 100 MB of log four times (minutes each): run only when named
ON_REQUEST = (soak.NAME, cluster.NAME, waiting.NAME, biglog.NAME)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        help="run just this benchmark (repeat the flag for several)",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=200,
        help="child round trips (and Celery task round trips) to time (default 200)",
    )
    parser.add_argument(
        "--executions",
        type=int,
        default=500,
        help="executions per burst, local and remote (default 500)",
    )
    parser.add_argument(
        "--wan-calls",
        type=int,
        default=30,
        help="remote child round trips timed at each round-trip time of the wan bench (default 30)",
    )
    parser.add_argument(
        "--biglog-mb",
        type=float,
        default=100.0,
        help="MB of log lines the big-log execution writes (default 100, issue 19's size)",
    )
    parser.add_argument(
        "--biglog-line-bytes",
        type=int,
        default=2000,
        help="bytes per log line of the big-log execution, 12 to 65536 (default 2000)",
    )
    parser.add_argument(
        "--tasks", type=int, default=5000, help="Celery tasks per burst (default 5000)"
    )
    parser.add_argument(
        "--idle-seconds", type=int, default=10, help="how long to watch an idle workspace"
    )
    parser.add_argument(
        "--fleet-sizes",
        type=_sizes,
        default=fleet.DEFAULT_LINKS,
        help="links of each fleet measured, comma-separated (default 100; issue 5: 10,100,1000)",
    )
    parser.add_argument(
        "--fleet-starts",
        type=int,
        default=200,
        help="executions started one at a time on random links, per fleet (default 200)",
    )
    parser.add_argument(
        "--fleet-idle-seconds",
        type=int,
        default=30,
        help="how long each idle hub is watched; longer than the 25 s hold (default 30)",
    )
    parser.add_argument(
        "--backfill-executions",
        type=int,
        default=100_000,
        help="past executions mirrored by the backfill (default 100000, issue 5's size)",
    )
    parser.add_argument(
        "--soak-executions",
        type=int,
        default=1000,
        help="remote executions per dial direction in the soak (default 1000; issue 4: 10000)",
    )
    parser.add_argument(
        "--soak-rate",
        type=float,
        default=50.0,
        help="remote executions started per second in the soak (default 50)",
    )
    parser.add_argument(
        "--soak-drop-every-s",
        type=float,
        default=3.0,
        help="mean seconds between the soak proxy's cuts of every link connection (default 3)",
    )
    parser.add_argument(
        "--cluster-executions",
        type=int,
        default=1000,
        help="executions of each cluster burst, on PostgreSQL (default 1000)",
    )
    parser.add_argument(
        "--waiting-executions",
        type=int,
        default=3000,
        help="executions sleeping at once in one workspace (default 3000, issue 19's size)",
    )
    parser.add_argument(
        "--waiting-remote",
        type=int,
        default=1000,
        help="remote executions sleeping over one link (default 1000, issue 19's size)",
    )
    parser.add_argument(
        "--waiting-reads",
        type=int,
        default=200,
        help="API reads of each kind timed, idle and while they sleep (default 200)",
    )
    parser.add_argument(
        "--waiting-calls",
        type=int,
        default=50,
        help="remote round trips timed before and while they sleep (default 50)",
    )
    parser.add_argument(
        "--cluster-lease-s",
        type=float,
        default=cluster.LEASE_S,
        help=f"the cluster's process lease in seconds (default {cluster.LEASE_S:g})",
    )
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/<time>.json)")
    options = parser.parse_args(argv)
    sizes = (
        options.calls,
        options.executions,
        options.tasks,
        options.idle_seconds,
        options.fleet_starts,
        options.backfill_executions,
        options.soak_executions,
        options.wan_calls,
        options.cluster_executions,
        options.waiting_executions,
        options.waiting_remote,
        options.waiting_reads,
        options.waiting_calls,
        *options.fleet_sizes,
    )
    if min(sizes) < 1:
        parser.error("every count and size must be at least 1")
    if options.biglog_mb <= 0 or not 12 <= options.biglog_line_bytes <= 65536:
        parser.error("--biglog-mb must be positive, --biglog-line-bytes from 12 to 65536")
    if options.fleet_idle_seconds < 2:
        parser.error("--fleet-idle-seconds must be at least 2")
    if options.cluster_lease_s < 1:
        parser.error("--cluster-lease-s must be at least 1")
    if options.soak_rate <= 0 or options.soak_drop_every_s <= 0:
        parser.error("--soak-rate and --soak-drop-every-s must be positive")
    return options


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of counts"
        ) from None


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    # SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so that every benchmark still stops
    # its processes and removes its directories on the way out
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.perf_counter()
    baseline_ms, figures = common.measure_baseline(BASELINE_RUNS)
    if options.only:
        names = [name for name in BENCHMARKS if name in options.only]
    else:
        names = [name for name in BENCHMARKS if name not in ON_REQUEST]
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        figures += BENCHMARKS[name](options, baseline_ms, figures)
    elapsed_s = time.perf_counter() - started
    common.print_table(figures)
    out = options.out or RESULTS_DIR / f"{_timestamp()}.json"
    write_results(out, options, baseline_ms, figures, elapsed_s)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nbaseline {baseline_ms:.3f} ms; took {elapsed_s:.1f} s; load average {load}")
    print(f"results in {out}")
    return 0


def write_results(
    out: Path,
    options: argparse.Namespace,
    baseline_ms: float,
    figures: list[common.Figure],
    elapsed_s: float,
) -> None:
    """Write the run's figures and the facts needed to compare runs as one JSON document."""
    document: dict[str, Any] = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_after": os.getloadavg(),
        },
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
        "baseline_ms": baseline_ms,
        "elapsed_s": elapsed_s,
        "figures": [dataclasses.asdict(f) for f in figures],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")


def _timestamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; no results written", file=sys.stderr)
        sys.exit(130)
