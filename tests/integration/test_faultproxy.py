"""Pins the fault proxy's behaviours against a real loopback HTTP listener and real httpx clients."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.waiting import wait_until

RECV_TIMEOUT_S = 2.0
REQUEST = b"GET / HTTP/1.1\r\nHost: upstream\r\n\r\n"


class _OkHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a keep-alive `ok`."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Listener(http.server.ThreadingHTTPServer):
    """An upstream whose close joins its handler threads and keeps quiet about torn requests."""

    daemon_threads = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    server = _Listener(("127.0.0.1", 0), _OkHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="upstream")
    thread.start()
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def proxy(upstream: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(*upstream, seed=7) as running:
        yield running


def _client(proxy: FaultProxy, *, timeout: float = 5.0, keepalive: bool = True) -> httpx.Client:
    limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
    return httpx.Client(base_url=proxy.url_base, timeout=timeout, limits=limits, trust_env=False)


def _connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.settimeout(RECV_TIMEOUT_S)
    return sock


def _exchange(sock: socket.socket) -> bytes:
    """Send one request over a raw socket and read until its `ok` body arrives."""
    sock.sendall(REQUEST)
    response = b""
    while not response.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-response after {response!r}"
        response += chunk
    return response


def test_pass_mode_forwards_requests_and_responses(proxy: FaultProxy) -> None:
    with _client(proxy) as client:
        response = client.get("/")
    assert (response.status_code, response.text) == (200, "ok")
    assert proxy.connections_total == 1


def test_refuse_mode_fails_requests_until_pass_mode_returns(proxy: FaultProxy) -> None:
    proxy.set_mode("refuse")
    with _client(proxy) as client:
        with pytest.raises(httpx.TransportError):
            client.get("/")
        proxy.set_mode("pass")
        assert client.get("/").text == "ok"


def test_blackhole_mode_makes_requests_time_out(proxy: FaultProxy) -> None:
    proxy.set_mode("blackhole")
    with _client(proxy, timeout=0.5) as client, pytest.raises(httpx.TimeoutException):
        client.get("/")


def test_leaving_blackhole_mode_closes_held_connections(proxy: FaultProxy) -> None:
    proxy.set_mode("blackhole")
    with _connect(proxy) as sock:
        sock.sendall(REQUEST)
        wait_until(
            lambda: proxy.connections_total == 1,
            "the proxy to count one connection",
            RECV_TIMEOUT_S,
        )
        proxy.set_mode("pass")
        assert sock.recv(1) == b""


def test_a_stall_holds_an_open_connection_s_bytes_until_resumed(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        _exchange(sock)
        proxy.stall(True)
        sock.sendall(REQUEST)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # held: neither an answer nor a close
        sock.settimeout(RECV_TIMEOUT_S)
        proxy.stall(False)
        response = b""
        while not response.endswith(b"\r\n\r\nok"):
            chunk = sock.recv(4096)
            assert chunk, f"closed after {response!r}"
            response += chunk
    assert proxy.connections_cut == proxy.connections_reset == 0


def test_certain_reset_fails_every_request_and_counts_it(proxy: FaultProxy) -> None:
    proxy.reset_probability(1.0)
    with _client(proxy, keepalive=False) as client:
        for _ in range(10):
            with pytest.raises(httpx.TransportError):
                client.get("/")
    assert proxy.connections_reset == 10


def test_zero_reset_probability_lets_every_request_through(proxy: FaultProxy) -> None:
    proxy.reset_probability(0.0)
    with _client(proxy, keepalive=False) as client:
        statuses = [client.get("/").status_code for _ in range(10)]
    assert statuses == [200] * 10
    assert proxy.connections_reset == 0


def test_cut_every_cuts_that_share_of_transfers_on_reused_connections(proxy: FaultProxy) -> None:
    """Each request and each answer is at least one chunk: cutting every third chunk fails
    at least one request in three on a kept-alive connection, and each failure is a reset."""
    proxy.cut_every(3)
    with _client(proxy) as client:
        outcomes = [_succeeds(client) for _ in range(12)]
    assert outcomes.count(False) >= 4, outcomes
    assert proxy.connections_reset == outcomes.count(False)
    proxy.cut_every(0)  # the control: the same requests, none cut
    with _client(proxy) as client:
        assert all(_succeeds(client) for _ in range(12))
    assert proxy.connections_reset == outcomes.count(False)


def test_same_seed_resets_the_same_connections(upstream: tuple[str, int]) -> None:
    outcomes = []
    for _ in range(2):
        with FaultProxy(*upstream, seed=3) as proxy, _client(proxy, keepalive=False) as client:
            proxy.reset_probability(0.5)
            outcomes.append([_succeeds(client) for _ in range(12)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {True, False}


def _succeeds(client: httpx.Client) -> bool:
    try:
        client.get("/")
    except httpx.TransportError:
        return False
    return True


def test_idle_timeout_cuts_an_idle_connection(proxy: FaultProxy) -> None:
    proxy.idle_timeout(0.3)
    with _connect(proxy) as sock:
        assert sock.recv(1) == b""
    assert proxy.connections_cut == 1


def test_idle_timeout_spares_a_busy_connection(proxy: FaultProxy) -> None:
    proxy.idle_timeout(0.3)
    with _client(proxy) as client:
        for _ in range(8):
            assert client.get("/").text == "ok"
            time.sleep(0.1)
    assert (proxy.connections_total, proxy.connections_cut) == (1, 0)


def test_delay_adds_latency_each_way(proxy: FaultProxy) -> None:
    proxy.delay(0.15)
    with _client(proxy) as client:
        started = time.perf_counter()
        client.get("/")
        elapsed = time.perf_counter() - started
    # At least one chunk each way, each held back by the delay.
    assert elapsed >= 0.3


def test_cut_all_closes_a_live_connection(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        _exchange(sock)
        proxy.cut_all()
        assert sock.recv(1) == b""
    assert proxy.connections_cut == 1


def test_close_stops_listening_and_joins_its_thread(upstream: tuple[str, int]) -> None:
    proxy = FaultProxy(*upstream).start()
    port = proxy.port
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port)).close()
    assert not [t for t in threading.enumerate() if t.name == "faultproxy"]
