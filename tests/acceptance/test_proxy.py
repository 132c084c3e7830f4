"""A dialer inside a company network reaches the other side only through its HTTP proxy.

Real proxies (Debian's tinyproxy): the link goes through one named by the sync config's
proxy_url or by HTTPS_PROXY, with the listener's certificate checked end to end; a proxy that
wants credentials or refuses leaves a link status that says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.acceptance.conftest import HUB_DIALS, Pair
from tests.support import tinyproxy
from tests.support.tinyproxy import Tinyproxy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(tinyproxy.missing() is not None, reason=str(tinyproxy.missing()))

FLOW = "def handler(system, this):\n    this.save(output_value={'ran': True})\n"


@pytest.fixture
def proxies() -> Iterator[Callable[..., Tinyproxy]]:
    started: list[Tinyproxy] = []

    def start(**options: object) -> Tinyproxy:
        proxy = Tinyproxy(**options)  # type: ignore[arg-type]
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.close()


def run_remote(pair: Pair) -> dict[str, Any]:
    if pair.hub_api.get("/flow/through").status_code == 404:
        pair.hub_api.create_flow("through", FLOW)
    started = pair.hub_api.ok(
        "POST", "/execution", json={"flow_name": "through", "remote_workspace_name": "edge"}
    )
    return pair.hub_api.wait_ended(started["id"])


def set_proxy(pair: Pair, proxy_url: str) -> None:
    pair.hub_api.ok("PATCH", "/sync_config/edge", json={"proxy_url": proxy_url})


def wait_error(pair: Pair, words: str, timeout_s: float = 30.0) -> dict[str, Any]:
    def failing_with_words() -> dict[str, Any]:
        status = pair.status("hub")
        assert status["state"] == "failing" and words in (status.get("last_error") or ""), status
        return status

    return wait_until(failing_with_words, f"the link to say {words!r}", timeout_s, poll_s=0.1)


def test_the_dialer_goes_through_the_proxy_of_its_sync_config_and_checks_tls_end_to_end(
    linked_pair: Callable[..., Pair], proxies: Callable[..., Tinyproxy]
) -> None:
    proxy = proxies()
    pair = linked_pair(HUB_DIALS, is_tls=True)
    assert run_remote(pair)["status"] == "ENDED_SUCCESS"
    assert proxy.connects() == [], "control: without proxy_url the link goes direct"

    set_proxy(pair, proxy.url)
    pair.wait_connected()
    ended = run_remote(pair)
    assert ended["status"] == "ENDED_SUCCESS", ended["message"]
    listener = f"127.0.0.1:{pair.edge.port()}"
    assert any(f"CONNECT {listener} " in line for line in proxy.connects()), proxy.connects()
    assert pair.hub_api.ok("GET", "/sync_config/edge")["proxy_url"] == proxy.url


def test_a_proxy_that_wants_credentials_says_so_until_they_are_given(
    linked_pair: Callable[..., Pair], proxies: Callable[..., Tinyproxy]
) -> None:
    proxy = proxies(credentials=("ops", "s3cret"))
    pair = linked_pair(HUB_DIALS, is_tls=True)
    set_proxy(pair, proxy.url)
    wait_error(pair, "wants credentials (407 Proxy Authentication Required)")

    set_proxy(pair, proxy.url.replace("http://", "http://ops:s3cret@"))
    pair.wait_connected()
    assert run_remote(pair)["status"] == "ENDED_SUCCESS"
    shown = pair.hub_api.ok("GET", "/sync_config/edge")["proxy_url"]
    assert shown == proxy.url.replace("http://", "http://ops:***@")  # the password stays put


def test_a_proxy_that_refuses_leaves_a_status_that_says_so(
    linked_pair: Callable[..., Pair], proxies: Callable[..., Tinyproxy]
) -> None:
    proxy = proxies(is_refusing=True)
    pair = linked_pair(HUB_DIALS, is_tls=True)
    set_proxy(pair, proxy.url)
    status = wait_error(pair, "refused to connect")
    assert "403" in status["last_error"] and proxy.url in status["last_error"]


def test_https_proxy_from_the_environment_is_used_and_no_proxy_is_honoured(
    linked_pair: Callable[..., Pair], proxies: Callable[..., Tinyproxy]
) -> None:
    proxy = proxies()
    pair = linked_pair(HUB_DIALS, is_tls=True, env={"HTTPS_PROXY": proxy.url})
    assert run_remote(pair)["status"] == "ENDED_SUCCESS"
    assert proxy.connects(), "the dialer did not go through HTTPS_PROXY"

    bypassed = proxies()
    direct = linked_pair(
        HUB_DIALS, is_tls=True, env={"HTTPS_PROXY": bypassed.url, "NO_PROXY": "127.0.0.1"}
    )
    assert run_remote(direct)["status"] == "ENDED_SUCCESS"
    assert bypassed.connects() == []


def test_a_proxy_url_the_dialer_could_not_use_is_refused_with_what_to_write(
    linked_pair: Callable[..., Pair],
) -> None:
    pair = linked_pair(HUB_DIALS)
    for bad in ("socks5://127.0.0.1:1080", "http://", "http://proxy:3128/path", "http://p:x"):
        answer = pair.hub_api.patch("/sync_config/edge", json={"proxy_url": bad})
        assert answer.status_code == 400, (bad, answer.text)
        assert "http://[USER:PASSWORD@]HOST:PORT" in answer.json()["message"]
