"""A real `tether serve` process: it serves, prints a generated admin password once, runs
flows, and leaves no process behind when it stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.envelopes import HQ_HELLO, LISTENER, Link, create_listener
from tests.support.processes import descendants, wait_all_gone
from tests.support.waiting import wait_until
from tests.support.workspace import ADMIN_PASSWORD, ApiClient, ServedWorkspace
from tether.link import keys

GENERATED = re.compile(r"created the organization admin 'admin' with password: (\S+)")

# Starts a helper process, records both pids, then keeps running until cancelled or stopped.
BUSY_WITH_A_HELPER = """
import os
import subprocess

def handler(system, this):
    helper = subprocess.Popen(['sleep', '60'])
    system.setting('pids').save(value=[os.getpid(), helper.pid])
    while True:
        this.sleep(0.05)
"""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServedWorkspace]]:
    """Starts `tether serve` processes; each is stopped (or killed) at teardown."""
    started: list[ServedWorkspace] = []

    def start(name: str = "served", data_dir: Path | None = None, **env: str) -> ServedWorkspace:
        workspace = ServedWorkspace(name, data_dir or tmp_path / name, env=env)
        started.append(workspace)
        return workspace.start()

    yield start
    for workspace in started:
        workspace.stop()
        workspace.kill()


@pytest.fixture
def login() -> Iterator[Callable[..., ApiClient]]:
    """Logs in to a served workspace as admin; the HTTP clients are closed at teardown."""
    opened: list[httpx.Client] = []

    def login_(workspace: ServedWorkspace, password: str = ADMIN_PASSWORD) -> ApiClient:
        http = httpx.Client(base_url=workspace.api_url, timeout=30)
        opened.append(http)
        return ApiClient.login(http, "admin", password)

    yield login_
    for http in opened:
        http.close()


def test_served_workspace_answers_health_logs_in_and_runs_a_flow(
    serve: Callable[..., ServedWorkspace], login: Callable[..., ApiClient]
) -> None:
    workspace = serve()
    assert workspace.url.startswith("http://127.0.0.1:")
    health = httpx.get(workspace.api_url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["workspace"] == "served"
    api = login(workspace)
    api.create_flow(
        "child", "def handler(system, this, inputs):\n    this.set_output('x2', inputs['x'] * 2)\n"
    )
    api.create_flow(
        "parent",
        "def handler(system, this):\n"
        "    print('calling child')\n"
        "    this.set_output('r', this.flow('child', x=21).get('output_value'))\n",
    )
    record = api.run("parent")
    assert record["status"] == "ENDED_SUCCESS", record
    assert record["output_value"] == {"r": {"x2": 42}}
    assert api.log(record["id"]) == ["calling child"]
    assert workspace.process is not None
    assert os.getpid() not in descendants(workspace.process.pid)


def test_generated_admin_password_is_printed_once(
    serve: Callable[..., ServedWorkspace], login: Callable[..., ApiClient]
) -> None:
    first = serve("gen", TETHER_ADMIN_PASSWORD="")
    matches = GENERATED.findall("".join(first.output))
    assert len(matches) == 1, first.output
    password = matches[0]
    assert login(first, password).get("/auth/me").json()["name"] == "admin"
    first.stop()
    assert "".join(first.output).count(password) == 1  # not repeated in any later log line
    again = serve("gen", data_dir=first.data_dir, TETHER_ADMIN_PASSWORD="")
    assert not GENERATED.search("".join(again.output))
    assert password not in "".join(again.output)
    login(again, password)  # the password generated on first start still works


def test_a_given_admin_password_is_not_printed(
    serve: Callable[..., ServedWorkspace], login: Callable[..., ApiClient]
) -> None:
    workspace = serve()
    login(workspace)
    assert not GENERATED.search("".join(workspace.output))
    assert "admin-password-for-tests" not in "".join(workspace.output)


def test_stopping_the_workspace_leaves_no_child_processes(
    serve: Callable[..., ServedWorkspace], login: Callable[..., ApiClient]
) -> None:
    workspace = serve()
    api = login(workspace)
    api.create_flow("busy", BUSY_WITH_A_HELPER)
    execution = api.start("busy")
    execution_pid, helper_pid = api.wait_setting("pids")
    assert workspace.process is not None
    server_pid = workspace.process.pid
    family = descendants(server_pid)
    assert {execution_pid, helper_pid} <= family  # the fork server is in there too
    workspace.stop()
    assert workspace.process.returncode is not None
    wait_all_gone(family | {server_pid})
    restarted = serve(data_dir=workspace.data_dir)
    record = login(restarted).wait_ended(execution["id"])
    assert record["status"] == "ENDED_ERROR"
    assert "workspace stopped" in record["message"]


def test_a_killed_server_leaves_no_execution_process_behind(
    serve: Callable[..., ServedWorkspace], login: Callable[..., ApiClient]
) -> None:
    """kill -9 of the server alone (not its group): its fork server and scripts die with it."""
    workspace = serve()
    api = login(workspace)
    api.create_flow("busy", BUSY_WITH_A_HELPER)
    execution = api.start("busy")
    api.wait_setting("pids")
    assert workspace.process is not None
    server_pid = workspace.process.pid
    family = descendants(server_pid)
    os.kill(server_pid, signal.SIGKILL)
    workspace.process.wait(10)
    wait_all_gone(family)
    restarted = serve(data_dir=workspace.data_dir)
    record = login(restarted).wait_ended(execution["id"])
    assert record["status"] == "ENDED_ERROR"
    assert "workspace stopped" in record["message"]


def test_a_clean_stop_answers_a_held_long_poll_at_once(
    serve: Callable[..., ServedWorkspace], login: Callable[..., ApiClient]
) -> None:
    """SIGTERM while a peer's long-poll is held: it is answered, not cut by the graceful timeout.

    uvicorn waits for open requests before the app's lifespan ends; without the release at the
    start of the stop, the poll would be held until GRACEFUL_STOP_S cancelled it (the client
    sees the connection end without an answer, and uvicorn logs the cancel).
    """
    workspace = serve()
    api = login(workspace)
    own_key, remote_key = keys.generate_private_key(2048), keys.generate_private_key(2048)
    create_listener(api, own_key, remote_key)
    link = Link(api, httpx.Client(base_url=workspace.api_url, timeout=60), remote_key, 300)
    answers: list[httpx.Response | Exception] = []

    def poll() -> None:
        try:
            answers.append(link.post(*link.seal(hello={**HQ_HELLO, "poll_s": 50})))
        except httpx.HTTPError as exc:
            answers.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    wait_until(
        lambda: api.ok("GET", f"/sync_config/{LISTENER}/status")["remote_workspace"] == "hq",
        "the long-poll to arrive",
        30,
    )
    assert not answers, "the poll was answered before the stop: it was not held"
    workspace.stop()
    poller.join(30)
    link.client.close()
    assert len(answers) == 1 and isinstance(answers[0], httpx.Response), answers
    assert answers[0].status_code == 200, answers[0].text
    assert workspace.process is not None
    assert workspace.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert "timeout graceful shutdown exceeded" not in "".join(workspace.output)


def test_the_url_printed_takes_connections_at_once(tmp_path: Path) -> None:
    """What reads the printed URL (the demo, scripts) connects at once, with no retry: the
    socket listens before the URL is printed, not only once the app has started."""
    command = [sys.executable, "-m", "tether.cli", "serve", "--port", "0", "--name", "early"]
    command += ["--data-dir", str(tmp_path / "early")]
    env = {**os.environ, "TETHER_ADMIN_PASSWORD": "early-password"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    ) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:
                found = re.search(r"serving on https?://([0-9.]+):(\d+)", line)
                if found:
                    break
            else:
                pytest.fail("tether serve ended without printing its URL")
            with socket.create_connection((found[1], int(found[2])), timeout=5):
                pass  # refused (ECONNREFUSED) when the socket is bound but not listening
        finally:
            process.terminate()
            process.communicate(timeout=30)
