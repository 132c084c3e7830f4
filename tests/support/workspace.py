"""Test helpers: a logged-in API client, and real `tether serve` processes on free ports."""

from __future__ import annotations

import atexit
import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.waiting import wait_until

ADMIN_PASSWORD = "admin-password-for-tests"
# The one directory (besides their own scratch) that the tests' flows may write: the marker
# files by which tests count how often a script ran live beneath it. Made by each process
# that imports this module (each xdist worker, and a benchmark run that borrows the tests'
# helpers) and removed when that process exits.
FLOW_WRITABLE = Path(tempfile.mkdtemp(prefix="tether-flow-writable-"))
FLOW_WRITABLE.chmod(0o1777)  # also for children that run as an unprivileged account
atexit.register(shutil.rmtree, FLOW_WRITABLE, ignore_errors=True)


def flow_writable_dir(prefix: str) -> Path:
    """A fresh directory that the tests' flows may write into."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=FLOW_WRITABLE))
    path.chmod(0o1777)
    return path


def is_healthy(api_url: str, verify: ssl.SSLContext | bool = True) -> bool:
    """Whether the workspace at ``api_url`` answers its health check.

    The standard library's client, closed on every path: httpx (httpcore) leaves the socket
    of a timed-out read open until it is collected, and the ResourceWarning then fails
    whichever test is running (encode/httpcore#365).
    """
    url = urllib.parse.urlsplit(api_url)
    connection: http.client.HTTPConnection
    if url.scheme == "https":
        if isinstance(verify, ssl.SSLContext):
            context = verify
        else:
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(url.netloc, timeout=2, context=context)
    else:
        connection = http.client.HTTPConnection(url.netloc, timeout=2)
    try:
        connection.request("GET", url.path + "/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


SERVING = re.compile(r"serving on (https?://\S+)")


def said(
    pattern: re.Pattern[str], output: list[str], pump: threading.Thread | None, what: str
) -> str | None:
    """The first group of ``pattern`` in the lines a process printed so far, None if not yet.

    Fails the test (not an assertion, which ``wait_until`` takes for "not yet") once the
    process has closed its output (its pump has ended) without printing it.
    """
    is_all_read = pump is None or not pump.is_alive()  # read before the lines: none missed
    for line in list(output):
        match = pattern.search(line)
        if match:
            return match.group(1)
    if is_all_read:
        pytest.fail(f"{what} exited:\n" + "".join(output))
    return None


@dataclass
class ApiClient:
    """A client with a bearer token; ``client`` is an httpx.Client or Starlette TestClient."""

    client: Any
    token: str

    @classmethod
    def login(cls, client: Any, user: str, password: str) -> ApiClient:
        answer = client.post("/auth/login", json={"user_name": user, "password": password})
        assert answer.status_code == 200, answer.text
        return cls(client, answer.json()["token"])

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        answer: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return answer

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of a 2xx answer; fails the test with the body otherwise."""
        answer = self.request(method, path, **kwargs)
        assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def create_flow(self, name: str, script: str) -> None:
        self.ok("POST", "/flow", json={"name": name, "script": script})

    def start(self, flow_name: str, **body: Any) -> dict[str, Any]:
        record: dict[str, Any] = self.ok(
            "POST", "/execution", json={"flow_name": flow_name, **body}
        )
        return record

    def wait_ended(self, execution_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The execution once it has ended; fails the test after ``timeout_s``."""

        def ended() -> dict[str, Any]:
            record: dict[str, Any] = self.ok("GET", f"/execution/{execution_id}")
            assert record["status"].startswith("ENDED_"), record
            return record

        return wait_until(ended, f"execution {execution_id} to end", timeout_s)

    def wait_status(
        self, execution_id: str, status: str, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any]:
            record: dict[str, Any] = self.ok("GET", f"/execution/{execution_id}")
            assert record["status"] == status, record
            return record

        return wait_until(reached, f"execution {execution_id} to be {status}", timeout_s)

    def run(self, flow_name: str, **body: Any) -> dict[str, Any]:
        """Start an execution and return it once ended."""
        return self.wait_ended(self.start(flow_name, **body)["id"])

    def log(self, execution_id: str) -> list[str]:
        return [e["message"] for e in self.ok("GET", f"/execution/{execution_id}/log")]

    def wait_setting(self, name: str, timeout_s: float = 30.0) -> Any:
        """The value of setting ``name`` once it exists; fails the test after ``timeout_s``."""

        def stored() -> dict[str, Any] | None:
            answer = self.get(f"/setting/{name}")
            if answer.status_code == 404:
                return None
            assert answer.status_code == 200, answer.text
            return {"value": answer.json()["value"]}  # truthy even when the value is not

        return wait_until(stored, f"setting {name!r} to appear", timeout_s)["value"]

    def set_setting(self, name: str, value: Any) -> None:
        self.ok("POST", "/setting", json={"name": name, "value": value})


@dataclass
class ServedWorkspace:
    """A real `tether serve` process on a free loopback port."""

    name: str
    data_dir: Path
    process: subprocess.Popen[str] | None = None
    url: str = ""
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    _pump: threading.Thread | None = field(default=None, repr=False)
    # Every client handed out, closed at stop: one left to the garbage collector raised its
    # socket's ResourceWarning in whichever later test was running then.
    _clients: list[httpx.Client] = field(default_factory=list, repr=False)

    def start(self, timeout_s: float = 30.0, port: int = 0) -> ServedWorkspace:
        """Start the process and wait until it answers /health."""
        env = {
            **os.environ,
            "TETHER_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "TETHER_SANDBOX_WRITABLE": str(FLOW_WRITABLE),
            **self.env,
        }
        command = [sys.executable, "-m", "tether.cli", "serve", "--data-dir", str(self.data_dir)]
        command += ["--name", self.name, "--port", str(port), *self.extra_args]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        self._drain()
        self.url = wait_until(
            lambda: said(SERVING, self.output, self._pump, "tether serve"),
            f"{self.name} to say where it serves",
            timeout_s,
        )
        self._wait_healthy(max(deadline - time.monotonic(), 0.0))
        return self

    def _drain(self) -> None:
        def pump() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()

    def _wait_healthy(self, timeout_s: float) -> None:
        ca_file = self.env.get("TEST_CA_FILE")
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        wait_until(
            lambda: is_healthy(self.api_url, verify), f"{self.name} to answer /health", timeout_s
        )

    @property
    def api_url(self) -> str:
        return self.url + "/api/latest"

    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, **kwargs: Any) -> ApiClient:
        http = httpx.Client(base_url=self.api_url, timeout=30, **kwargs)
        self._clients.append(http)
        return ApiClient.login(http, "admin", ADMIN_PASSWORD)

    def kill(self) -> None:
        """kill -9 the workspace and everything it started."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, *, keep_clients: bool = False) -> None:
        """Stop the workspace gracefully (SIGTERM), killing it if it lingers.

        Its clients are closed too, unless ``keep_clients`` (for a restart: a thread may still
        hold one, and gets a fresh one after its next failure)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._pump is not None:
            # The pump ends at the pipe's end of file; closing the pipe under it would fail it.
            self._pump.join(10)
            self._pump = None
        if self.process and self.process.stdout:
            self.process.stdout.close()
        while self._clients and not keep_clients:
            self._clients.pop().close()
