"""A link's status tells the truth: a silent peer is noticed within one long-poll hold plus a
few seconds, waiting_on never says "connected" for a link that is not, and a sync config
without the keys it needs says which it lacks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from tests.support import fakelistener
from tests.support.envelopes import Link, create_controlling
from tests.support.fakelistener import FakeListener
from tether.link import keys
from tether.store import sync_configs

CONTROLLED_HELLO = {"workspace": "far", "role": "controlled", "protocols": [1], "poll_s": 0}
GRACE_S = 5.0  # documented: a link is silent after one hold plus this


@contextlib.contextmanager
def later(link: Link, seconds: float) -> Iterator[None]:
    """The workspace's clock ``seconds`` ahead, for the block."""
    ctx = link.client.app.state.ctx
    ctx.clock = lambda: time.time() + seconds
    try:
        yield
    finally:
        ctx.clock = time.time


def test_a_listener_showed_connected_long_after_its_dialer_went_silent(
    link: Link, settings: Any, own_key: Any, remote_key: Any
) -> None:
    """Heard once, then silence: connected within one hold, not connected past hold + grace,
    in the status and in the waiting_on of an execution waiting on the link."""
    create_controlling(link.api, own_key, remote_key, "ctl")
    sealed = link.seal(receiver="ctl", hello=CONTROLLED_HELLO)
    assert link.post(*sealed, name="ctl").status_code == 200
    link.api.create_flow("f", "def handler(system, this):\n    pass\n")
    child = link.api.start("f", remote_workspace_name="ctl")["id"]

    def seen() -> tuple[str, dict[str, Any]]:
        status = link.api.ok("GET", "/sync_config/ctl/status")
        return status["state"], link.api.ok("GET", f"/execution/{child}")["waiting_on"][0]

    hold_s = settings.long_poll_s
    with later(link, hold_s - 1):
        state, waiting = seen()
    assert state == waiting["link_state"] == "connected"
    with later(link, hold_s + GRACE_S + 1):
        state, waiting = seen()
    assert state == waiting["link_state"] == "connecting"
    assert "no exchange with the other side since" in waiting["reason"] + (
        waiting["last_error"] or ""
    )


def test_a_dialer_black_holed_mid_hold_showed_connected(
    link: Link, settings: Any, own_key: Any, remote_key: Any
) -> None:
    """A listener that takes the request and never answers: past hold + grace, not connected."""
    ctx = link.client.app.state.ctx
    with FakeListener(fakelistener.endless(0)) as silent:
        link.api.ok(
            "POST",
            "/sync_config",
            json={
                "name": "hq",
                "remote_url": silent.url(),
                "own_private_key": keys.private_pem(own_key),
                "remote_public_key": keys.public_pem(remote_key),
            },
        )
        with ctx.transaction() as tx:  # as the last answer, before the listener went dark, left it
            sync_configs.update_state(
                tx.conn, "hq", state=sync_configs.CONNECTED, last_exchange_at=time.time()
            )
        with later(link, settings.long_poll_s + GRACE_S + 1):
            status = link.api.ok("GET", "/sync_config/hq/status")
    assert status["state"] == "connecting"
    assert "can this side reach it" in status["last_error"]


def test_a_sync_config_without_keys_sat_in_connecting_without_a_word(link: Link) -> None:
    link.api.ok("POST", "/sync_config", json={"name": "bare", "role": "controlled"})
    status = link.api.ok("GET", "/sync_config/bare/status")
    assert status["state"] == "failing"
    assert "no own_private_key" in status["last_error"]
    assert "no remote_public_key" in status["last_error"]
    listed = {c["name"]: c["state"] for c in link.api.ok("GET", "/sync_config")}
    assert listed["bare"] == "failing"
