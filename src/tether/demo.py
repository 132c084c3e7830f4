"""`tether demo`: two linked workspaces on loopback, the controlled one dialing out, one remote run.

Everything is made for the occasion (data directories, keys, passwords) in a temporary directory.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, cast

import httpx

from tether.link import keys
from tether.statuses import ENDED, Status

SERVING = re.compile(r"serving on (https?://\S+)")
REMOTE_FLOW = """import os, socket


def handler(system, this, inputs):
    print(f"hello {inputs['who']}, from process {os.getpid()} on {socket.gethostname()}")
    this.save(output_value={"greeting": f"hello {inputs['who']}", "pid": os.getpid()})
"""
PARENT_FLOW = """def handler(system, this):
    child = this.flow("greet", remote_workspace_name="edge", who="world")
    this.save(output_value={"remote": child.get("output_value"), "remote_execution": child.get("remote_execution_id")})
"""


class Workspace:
    """One `tether serve` child process of the demo."""

    def __init__(self, name: str, root: Path, password: str) -> None:
        self.name = name
        self.data_dir = root / name
        env = {**os.environ, "TETHER_ADMIN_PASSWORD": password, "TETHER_LONG_POLL_S": "20"}
        command = [
            sys.executable,
            "-m",
            "tether.cli",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--name",
            name,
            "--port",
            "0",
        ]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.url = self._wait_for_url()
        threading.Thread(target=self._drain, daemon=True).start()
        self.client = httpx.Client(base_url=self.url + "/api/latest", timeout=30)
        token = self.client.post(
            "/auth/login", json={"user_name": "admin", "password": password}
        ).json()["token"]
        self.client.headers["Authorization"] = f"Bearer {token}"

    def _wait_for_url(self) -> str:
        assert self.process.stdout is not None
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            match = SERVING.search(line)
            if match:
                return match.group(1)
        raise SystemExit(f"workspace {self.name} did not start:\n" + "".join(lines))

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for _line in self.process.stdout:
            pass

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.client.request(method, path, **kwargs)
        if answer.is_error:
            raise SystemExit(
                f"{self.name}: {method} {path} failed: {answer.status_code} {answer.text}"
            )
        return answer.json() if answer.content else None

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def _key_pair() -> tuple[str, str]:
    key = keys.generate_private_key(2048)
    return keys.private_pem(key), keys.public_pem(key)


def link(hub: Workspace, edge: Workspace) -> None:
    """Pair the workspaces: hub controls and listens, edge is controlled and dials out."""
    hub_private, hub_public = _key_pair()
    edge_private, edge_public = _key_pair()
    hub.call(
        "POST",
        "/sync_config",
        json={
            "name": "edge",
            "role": "controlling",
            "own_private_key": hub_private,
            "remote_public_key": edge_public,
        },
    )
    edge.call(
        "POST",
        "/sync_config",
        json={
            "name": "hub",
            "role": "controlled",
            "remote_url": f"{hub.url}/api/latest/sync_config/edge/sync",
            "own_private_key": edge_private,
            "remote_public_key": hub_public,
        },
    )


def run_remote(hub: Workspace, timeout_s: float = 60.0) -> dict[str, Any]:
    hub.call("POST", "/flow", json={"name": "greet", "script": REMOTE_FLOW})
    hub.call("POST", "/flow", json={"name": "demo", "script": PARENT_FLOW})
    execution = hub.call("POST", "/execution", json={"flow_name": "demo"})
    deadline = time.monotonic() + timeout_s
    while execution["status"] not in ENDED:
        if time.monotonic() > deadline:
            raise SystemExit(f"the demo execution did not end within {timeout_s:g} s: {execution}")
        time.sleep(0.1)
        execution = hub.call("GET", f"/execution/{execution['id']}")
    return cast("dict[str, Any]", execution)


def main(once: bool) -> int:
    # The demo's own API calls are not news: keep its output to the result and the URLs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    password = secrets.token_urlsafe(9)
    with tempfile.TemporaryDirectory(prefix="tether-demo-") as root:
        hub = Workspace("hub", Path(root), password)
        edge = Workspace("edge", Path(root), password)
        try:
            link(hub, edge)
            execution = run_remote(hub)
            print(f"\nexecution 'demo' in workspace hub ended {execution['status']}")
            print(f"  output: {execution['output_value']}")
            if execution["message"]:
                print(f"  message: {execution['message']}")
            print(f"\nhub  (controlling, listens):  {hub.url}/ui   (API: {hub.url}/docs)")
            print(f"edge (controlled, dials out): {edge.url}/ui   (API: {edge.url}/docs)")
            print(f"log in to either as 'admin' with password {password}")
            if not once:
                print("\nrunning; press Ctrl-C to stop")
                with _interruptible():
                    signal.pause()
            return 0 if execution["status"] == Status.ENDED_SUCCESS else 1
        finally:
            edge.stop()
            hub.stop()


class _interruptible:
    def __enter__(self) -> None:
        signal.signal(signal.SIGTERM, signal.default_int_handler)

    def __exit__(self, exc_type: object, *_: object) -> bool:
        return exc_type is KeyboardInterrupt
