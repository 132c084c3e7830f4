"""A REST task's round trip beside a direct HTTP call from a script, in the same run.

The task is a child execution (its own sandboxed process, a built-in handler, its inputs
sealed and read back); the direct call is `httpx.get` inside the parent's own process. The
two take turns, call by call, against one HTTP server of this process on loopback, so both
see the same load. Drives a real `tether serve` through its REST API; never imports the engine.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench import common, local

NAME = "tasks"
WARMUP_CALLS = 3
PARENT_SCRIPT = """\
import time

import httpx


def handler(system, this, inputs):
    url = inputs["url"]
    task_ms, direct_ms = [], []
    for i in range(inputs["warmup"] + inputs["calls"]):
        start = time.perf_counter()
        this.task("REST", url=url)
        task = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        httpx.get(url).raise_for_status()
        direct = (time.perf_counter() - start) * 1000
        if i >= inputs["warmup"]:
            task_ms.append(task)
            direct_ms.append(direct)
    this.save(output_value={"task_ms": task_ms, "direct_ms": direct_ms})
"""


@dataclass(frozen=True)
class Sizes:
    calls: int = 200


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    """A small JSON answer on a free loopback port, served by a thread of this process."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Serve a workspace (sandbox on), time task and direct calls in one flow, stop it."""
    with (
        http_server() as url,
        common.served_workspace("bench-tasks") as workspace,
        workspace.client() as client,
    ):
        local.create_flow(client, "rest_parent", PARENT_SCRIPT)
        inputs = {"url": url, "calls": sizes.calls, "warmup": WARMUP_CALLS}
        answer = client.post("/execution", json={"flow_name": "rest_parent", "input_value": inputs})
        parent = local.wait_ended(client, answer.raise_for_status().json()["id"], 60 + sizes.calls)
    if parent["status"] != "ENDED_SUCCESS":
        raise RuntimeError(f"the REST task benchmark's flow failed: {parent['message']}")
    task_ms = [float(d) for d in parent["output_value"]["task_ms"]]
    direct_ms = [float(d) for d in parent["output_value"]["direct_ms"]]
    task = common.latency_figure(
        NAME, "REST task round trip", task_ms, baseline_ms, "this.task('REST', url=...)"
    )
    direct = common.latency_figure(
        NAME, "direct HTTP call from a script", direct_ms, baseline_ms, "httpx.get(url)"
    )
    assert task.median is not None and direct.median is not None
    note = "what running the call as a task (its own execution and process) costs"
    return [
        task,
        direct,
        common.comparison_figure(NAME, "task / direct call", task.median, direct.median, note),
    ]
