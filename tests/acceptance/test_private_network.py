"""A real private network: each workspace on its own host, made of a Linux network namespace.

The test builds both hosts itself (ip netns, a veth pair between them, 192.0.2.0/24 from the
documentation range). The hub listens on its host's address; the edge listens only on its
own host's loopback, so nothing outside reaches it. The edge dials out to the hub, and a
remote execution started in the hub runs in the edge, inside the private host.
(Two namespaces rather than the test's own namespace and one more: some sandboxes do not
pass traffic between the root namespace and a veth peer; two namespaces always do.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.waiting import wait_until
from tests.support.workspace import ADMIN_PASSWORD, ApiClient, is_healthy
from tether.link import keys

HOST_ADDRESS = "192.0.2.1"
EDGE_ADDRESS = "192.0.2.2"
CLONE_NEWNET = 0x40000000
SERVING = re.compile(r"serving on (https?://\S+)")
T = TypeVar("T")

WHERE_FLOW = """\
import os


def handler(system, this, inputs):
    this.save(output_value={"netns": os.readlink("/proc/self/ns/net"), "echo": inputs["n"] * 2})
"""
PARENT_FLOW = """\
def handler(system, this):
    child = this.flow("where", remote_workspace_name="edge", n=21)
    this.save(output_value=child.get("output_value"))
"""


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


def _cannot_make_namespaces() -> str | None:
    if sys.platform != "linux":
        return "network namespaces exist only on Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    probe = f"tether-probe-{uuid.uuid4().hex[:6]}"
    try:
        _run("ip", "netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"'ip netns add' failed here: {getattr(exc, 'stderr', exc)}"
    _run("ip", "netns", "del", probe)
    return None


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[str, str]]:
    """Namespaces (public, private) joined by a veth pair. Removed afterwards."""
    suffix = uuid.uuid4().hex[:6]
    public, private = f"tether-pub-{suffix}", f"tether-prv-{suffix}"
    public_end, private_end = f"vtp{suffix}", f"vtq{suffix}"
    _run("ip", "netns", "add", public)
    try:
        _run("ip", "netns", "add", private)
        try:
            _run("ip", "link", "add", public_end, "type", "veth", "peer", "name", private_end)
            for namespace, device, address in (
                (public, public_end, HOST_ADDRESS),
                (private, private_end, EDGE_ADDRESS),
            ):
                _run("ip", "link", "set", device, "netns", namespace)
                inside = ("ip", "netns", "exec", namespace, "ip")
                _run(*inside, "addr", "add", f"{address}/24", "dev", device)
                _run(*inside, "link", "set", device, "up")
                _run(*inside, "link", "set", "lo", "up")
            yield public, private
        finally:
            _run("ip", "netns", "del", private)  # takes its veth end, and so the pair, along
    finally:
        _run("ip", "netns", "del", public)


class InNamespace:
    """Runs calls on a thread that has entered the namespace: its sockets live in there."""

    def __init__(self, name: str) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            1, initializer=self._enter, initargs=(name,)
        )

    @staticmethod
    def _enter(name: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{name}") as handle:
            if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")

    def call(self, function: Callable[..., T], *args: Any) -> T:
        return self._pool.submit(function, *args).result(timeout=60)

    def close(self) -> None:
        self._pool.shutdown()


class NamespacedApi:
    """An ApiClient whose requests are made from inside the namespace."""

    def __init__(self, inside: InNamespace, api_url: str) -> None:
        self._inside = inside
        self._http = inside.call(lambda: httpx.Client(base_url=api_url, timeout=30))
        self.api = inside.call(lambda: ApiClient.login(self._http, "admin", ADMIN_PASSWORD))

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._inside.call(lambda: self.api.ok(method, path, **kwargs))

    def close(self) -> None:
        self._inside.call(self._http.close)


@contextlib.contextmanager
def serve_in(
    namespace: str, name: str, host: str, data_dir: Path, inside: InNamespace
) -> Iterator[str]:
    """`tether serve` inside ``namespace`` listening on ``host``; yields its API URL."""
    env = {**os.environ, "TETHER_ADMIN_PASSWORD": ADMIN_PASSWORD, "TETHER_LONG_POLL_S": "5"}
    command = ["ip", "netns", "exec", namespace, sys.executable, "-m", "tether.cli", "serve"]
    command += ["--data-dir", str(data_dir), "--name", name, "--host", host, "--port", "0"]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        url = ""
        for line in process.stdout:
            output.append(line)
            if match := SERVING.search(line):
                url = match.group(1)
                break
        assert url, f"{name} did not start:\n" + "".join(output)
        threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True).start()
        inside.call(_wait_healthy, url + "/api/latest")
        yield url + "/api/latest"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        process.stdout.close()


def _wait_healthy(api_url: str) -> None:
    wait_until(lambda: is_healthy(api_url), "the edge to answer /health")


@pytest.fixture
def hosts() -> Iterator[tuple[str, str]]:
    reason = _cannot_make_namespaces()
    if reason:
        pytest.skip(reason)
    with two_hosts() as names:
        yield names


def _is_reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def _port(api_url: str) -> int:
    return int(api_url.rsplit(":", 1)[1].split("/")[0])


def test_controlled_workspace_in_a_private_network_dials_out_and_runs_remote_executions(
    hosts: tuple[str, str], tmp_path: Path
) -> None:
    public, private = hosts
    on_public, on_private = InNamespace(public), InNamespace(private)
    hub_key, edge_key = keys.generate_private_key(2048), keys.generate_private_key(2048)
    try:
        with (
            serve_in(public, "hub", HOST_ADDRESS, tmp_path / "hub", on_public) as hub_url,
            serve_in(private, "edge", "127.0.0.1", tmp_path / "edge", on_private) as edge_url,
        ):
            # From the hub's host, the edge is unreachable: not at its address, not anywhere.
            assert not on_public.call(_is_reachable, EDGE_ADDRESS, _port(edge_url))
            assert not on_public.call(_is_reachable, "127.0.0.1", _port(edge_url))
            hub_api, edge_api = (
                NamespacedApi(on_public, hub_url),
                NamespacedApi(on_private, edge_url),
            )
            _pair(hub_api, edge_api, hub_url, hub_key, edge_key)
            parent = _run_parent(hub_api)
            private_inode = os.stat(f"/run/netns/{private}").st_ino
            assert parent["output_value"] == {"netns": f"net:[{private_inode}]", "echo": 42}

            received = edge_api.ok("GET", "/execution", params={"origin": "received"})
            assert [r["status"] for r in received] == ["ENDED_SUCCESS"]
            assert received[0]["output_value"] == parent["output_value"]
            status = hub_api.ok("GET", "/sync_config/edge/status")
            summary = (status["state"], status["direction"], status["remote_workspace"])
            assert summary == ("connected", "listener", "edge")
            hub_api.close()
            edge_api.close()
    finally:
        on_public.close()
        on_private.close()


def _pair(
    hub: NamespacedApi, edge: NamespacedApi, hub_url: str, hub_key: Any, edge_key: Any
) -> None:
    """The hub listens and controls; the edge controls nothing and dials out."""
    hub.ok(
        "POST",
        "/sync_config",
        json={
            "name": "edge",
            "role": "controlling",
            "own_private_key": keys.private_pem(hub_key),
            "remote_public_key": keys.public_pem(edge_key.public_key()),
        },
    )
    edge.ok(
        "POST",
        "/sync_config",
        json={
            "name": "hub",
            "role": "controlled",
            "remote_url": f"{hub_url}/sync_config/edge/sync",
            "own_private_key": keys.private_pem(edge_key),
            "remote_public_key": keys.public_pem(hub_key.public_key()),
        },
    )
    hub.ok("POST", "/flow", json={"name": "where", "script": WHERE_FLOW})
    hub.ok("POST", "/flow", json={"name": "parent", "script": PARENT_FLOW})


def _run_parent(hub: NamespacedApi) -> dict[str, Any]:
    parent = hub.ok("POST", "/execution", json={"flow_name": "parent"})

    def ended() -> dict[str, Any]:
        record: dict[str, Any] = hub.ok("GET", f"/execution/{parent['id']}")
        assert record["status"].startswith("ENDED_"), record
        return record

    parent = wait_until(ended, "the parent to end")
    assert parent["status"] == "ENDED_SUCCESS", parent
    return parent
