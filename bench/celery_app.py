"""The Celery side of the peer benchmark: a trivial task, and a driver that times it.

Runs only inside the bench's own environment (bench/.venv-peers), copied into a temporary
directory: as the worker's app (`celery -A celery_app worker`) and as the driver
(`python celery_app.py CALLS TASKS ROUNDS`, which prints its figures as one JSON line).
Redis is at $BENCH_CELERY_REDIS_URL. Never imported by the suite itself.
"""

from __future__ import annotations

import json
import os
import sys
import time

from celery import Celery
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import ResultSet

REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379")
READY_TIMEOUT_S = 60.0
WARMUP_CALLS = 5

app = Celery("bench", broker=f"{REDIS_URL}/0", backend=f"{REDIS_URL}/1")
app.conf.update(broker_connection_retry_on_startup=True)


@app.task(name="bench.add")  # type: ignore[untyped-decorator]  # Celery has no types; the same name in the worker and in the driver (__main__)
def add(x: int, y: int) -> int:
    return x + y


def wait_ready() -> None:
    """Wait until the worker answers a task."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            add.delay(1, 2).get(timeout=2)
            return
        except ResultTimeout:
            if time.monotonic() > deadline:
                raise


def round_trips_ms(calls: int) -> list[float]:
    """Durations of ``add.delay(1, 2).get()``, ``calls`` times after a warm-up."""
    for _ in range(WARMUP_CALLS):
        add.delay(1, 2).get(timeout=30)
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        add.delay(1, 2).get(timeout=30)
        durations.append((time.perf_counter() - start) * 1000)
    return durations


def burst_rate(tasks: int) -> float:
    """Tasks per second: send ``tasks`` at once, until every result is ready."""
    start = time.perf_counter()
    results = ResultSet([add.delay(1, 2) for _ in range(tasks)])
    values = results.get(timeout=60 + tasks / 10)
    elapsed_s = time.perf_counter() - start
    if values != [3] * tasks:
        raise RuntimeError("some Celery tasks returned a wrong result")
    return tasks / elapsed_s


def main(calls: int, tasks: int, rounds: int) -> None:
    wait_ready()
    trips = round_trips_ms(calls)
    rates = [burst_rate(tasks) for _ in range(rounds)]
    print(json.dumps({"round_trips_ms": trips, "rates": rates}), flush=True)


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:4]))
