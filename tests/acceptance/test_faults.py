"""The link under fire: kills, partitions, resets, idle cuts and a black-holed peer.

Each scenario streams marked remote executions through two real workspaces while it breaks
something, then the history checker (tests/support/history.py) asserts that every one ended
once, the same on both sides, ran at most once (exactly once when it succeeded), with the
outputs of a clean run. Sizes are small by default; TETHER_FAULT_SCALE=N multiplies them.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import EDGE_DIALS, HUB_DIALS, Pair
from tests.support.history import (
    HUB_CONFIG,
    MARKED_FLOW,
    MARKED_PARENT_FLOW,
    History,
    push_marked_flows,
)
from tests.support.workspace import ApiClient, ServedWorkspace

SCALE = max(float(os.environ.get("TETHER_FAULT_SCALE", "1")), 0.1)
SHORT_POLL_S = 2.0  # --long-poll-s for the scenarios that count long-poll periods
EXTRA_READ_S = 10.0  # the dialer's read timeout beyond the hold (docs/protocol.md, Failures)
SHORT_POLL = {"TETHER_LONG_POLL_S": str(SHORT_POLL_S)}
# A silent peer shows as failing within the hold plus the read timeout, and some slack.
BLACK_HOLE_BOUND_S = SHORT_POLL_S + EXTRA_READ_S + 3.0
LOCAL_BOUND_S = 5.0  # a local flow's whole run while a link hangs
EDGE_CONFIG = "hub"  # the controlled side's sync config


KILL_TIMEOUT_S = round(120 + 180 * SCALE)  # pytest's per-test timeout, grown with the sizes
NETWORK_TIMEOUT_S = round(120 + 60 * SCALE)


def scaled(n: int) -> int:
    return max(1, round(n * SCALE))


def dialer_side(pair: Pair) -> str:
    return "hub" if pair.direction == HUB_DIALS else "edge"


def config_name(side: str) -> str:
    """The name of ``side``'s sync config for the other workspace."""
    return HUB_CONFIG if side == "hub" else EDGE_CONFIG


class Stream:
    """Starts marked remote executions on the controlling side from a thread, until closed.

    Its own client survives restarts of the hub: a start that fails while the hub is down is
    skipped (the checker still finds it if the hub had created it before dying).
    """

    def __init__(
        self,
        hub: ServedWorkspace,
        history: History,
        *,
        pace_s: float = 0.05,
        max_sleep_s: float = 0.0,
        parent_every: int = 0,
        cancel_every: int = 0,
        seed: int = 0,
    ) -> None:
        self._hub = hub
        self._history = history
        self._pace_s = pace_s
        self._max_sleep_s = max_sleep_s
        self._parent_every = parent_every
        self._cancel_every = cancel_every
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)
        self.started = 0
        self.failed = 0
        self.cancelled = 0
        self.error: BaseException | None = None

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise AssertionError("the stream of executions failed") from self.error

    def _run(self) -> None:
        try:
            self._stream()
        except BaseException as exc:  # surfaced by close(), in the test's thread
            self.error = exc

    def _stream(self) -> None:
        api: ApiClient | None = None
        while not self._stop.is_set():
            try:
                api = api or self._hub.client()
                self._start_one(api)
            except (httpx.HTTPError, AssertionError):  # the hub is down or restarting
                self.failed += 1
                if api is not None:
                    api.client.close()
                api = None
                self._stop.wait(0.1)
            self._stop.wait(self._pace_s)
        if api is not None:
            api.client.close()

    def _start_one(self, api: ApiClient) -> None:
        inputs = self._history.inputs(self._rng.uniform(0, self._max_sleep_s))
        count = self.started + self.failed + 1
        if self._parent_every and count % self._parent_every == 0:
            parent = api.start(MARKED_PARENT_FLOW, input_value=inputs)
            self._history.parents.add(parent["id"])
        else:
            child = api.start(MARKED_FLOW, remote_workspace_name=HUB_CONFIG, input_value=inputs)
            self._history.requested.add(child["id"])
            if self._cancel_every and count % self._cancel_every == 0:
                api.ok("POST", f"/execution/{child['id']}/cancel")
                self.cancelled += 1
        self.started += 1


class LinkWatch:
    """Polls both sides' link status from a thread and remembers every state it saw."""

    def __init__(self, pair: Pair, period_s: float = 0.1) -> None:
        self._apis = {side: pair.api(side) for side in ("hub", "edge")}
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-watch", daemon=True)
        self.seen: dict[str, list[tuple[float, dict[str, Any]]]] = {"hub": [], "edge": []}

    def __enter__(self) -> LinkWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for side, api in self._apis.items():
                status = api.ok("GET", f"/sync_config/{config_name(side)}/status")
                self.seen[side].append((time.monotonic(), status))
            self._stop.wait(self._period_s)

    def states(self, side: str) -> set[str]:
        return {status["state"] for _, status in self.seen[side]}


def dialer_warnings(workspace: ServedWorkspace, since: int) -> list[str]:
    """The link failures the dialer logged after output line ``since``."""
    name = config_name(workspace.name)
    return [
        line
        for line in workspace.output[since:]
        if "WARNING" in line and f"sync config {name}:" in line
    ]


def received_count(pair: Pair) -> int:
    return len(pair.edge_api.ok("GET", "/execution", params={"origin": "received", "limit": 1000}))


@pytest.fixture
def history(marker_dir: Path) -> History:
    return History(marker_dir / "markers")


def apis(pair: Pair) -> tuple[Callable[[], ApiClient], Callable[[], ApiClient]]:
    """The pair's current API clients, read afresh (a restart replaces them)."""
    return (lambda: pair.hub_api), (lambda: pair.edge_api)


# Restarts.

# Both directions cost a minute per scenario; the default run kills the listener in each.
FULL_MATRIX = SCALE >= 2
KILL_CONTROLLED = [HUB_DIALS, EDGE_DIALS] if FULL_MATRIX else [HUB_DIALS]
KILL_CONTROLLING = [HUB_DIALS, EDGE_DIALS] if FULL_MATRIX else [EDGE_DIALS]


def kill_and_restart(pair: Pair, side: str, kills: int, seed: int) -> None:
    """kill -9 one side at random moments, ``kills`` times, restarting it on its port each time."""
    rng = random.Random(seed)
    for _ in range(kills):
        time.sleep(rng.uniform(0.05, 0.6))
        getattr(pair, side).kill()
        time.sleep(rng.choice((0.0, 0.0, rng.uniform(0, 0.5))))  # sometimes down a moment
        pair.restart(side)


@pytest.mark.timeout(KILL_TIMEOUT_S)
@pytest.mark.parametrize("direction", KILL_CONTROLLED)
def test_kill_of_the_controlled_side_mid_stream_loses_nothing_and_runs_nothing_twice(
    linked_pair: Callable[..., Pair], history: History, direction: str
) -> None:
    """kill -9 of the controlled workspace, 20 times, while remote executions stream in."""
    pair = linked_pair(direction)
    push_marked_flows(pair.hub_api)
    with Stream(pair.hub, history, pace_s=0.05, max_sleep_s=0.3, cancel_every=7, seed=1) as stream:
        kill_and_restart(pair, "edge", scaled(20), seed=2)
        time.sleep(0.5)  # the last restart also meets executions in flight
    assert stream.started > 20, f"the stream started only {stream.started} executions"
    history.check(*apis(pair), restarted=("edge",))


@pytest.mark.timeout(KILL_TIMEOUT_S)
@pytest.mark.parametrize("direction", KILL_CONTROLLING)
def test_kill_of_the_controlling_side_mid_stream_still_converges(
    linked_pair: Callable[..., Pair], history: History, direction: str
) -> None:
    """kill -9 of the controlling workspace, 20 times: parents may end by the restart, children converge."""
    pair = linked_pair(direction)
    push_marked_flows(pair.hub_api)
    with Stream(pair.hub, history, pace_s=0.05, max_sleep_s=0.3, parent_every=3, seed=3) as stream:
        kill_and_restart(pair, "hub", scaled(20), seed=4)
        time.sleep(0.5)
    assert stream.started > 20, f"the stream started only {stream.started} executions"
    history.check(*apis(pair), restarted=("hub",))


# The network between the two.


@pytest.mark.timeout(NETWORK_TIMEOUT_S)
@pytest.mark.parametrize(("mode", "direction"), [("refuse", EDGE_DIALS), ("blackhole", HUB_DIALS)])
def test_partition_of_several_long_poll_periods_heals_without_loss(
    linked_pair: Callable[..., Pair], history: History, mode: str, direction: str
) -> None:
    """Four long-poll periods of refused or unanswered connections (every open one cut);
    starts and cancels queue up meanwhile, and all converge once it heals."""
    pair = linked_pair(direction, has_proxy=True, env=SHORT_POLL)
    assert pair.proxy is not None
    push_marked_flows(pair.hub_api)
    partition_s = 4 * SHORT_POLL_S
    with Stream(pair.hub, history, pace_s=0.1, max_sleep_s=0.2, cancel_every=5, seed=5) as stream:
        time.sleep(1.0)
        pair.proxy.set_mode(mode)
        pair.proxy.cut_all()
        cut_at = time.monotonic()
        # Refused: failing at once; unanswered: within the read timeout (see the black hole).
        status = pair.wait_link_state(dialer_side(pair), "failing", timeout_s=BLACK_HOLE_BOUND_S)
        assert pair.proxy.url_base in status["last_error"], status
        started_before, received_before = stream.started, received_count(pair)
        time.sleep(max(1.0, cut_at + partition_s - time.monotonic()))
        assert stream.started > started_before, "the controlling side stopped accepting starts"
        assert received_count(pair) == received_before, "a start crossed the partition"
        pair.proxy.set_mode("pass")
        time.sleep(1.0)
    history.check(*apis(pair))
    pair.wait_connected()


@pytest.mark.timeout(NETWORK_TIMEOUT_S)
def test_resets_of_a_fifth_of_connections_lose_nothing_and_run_nothing_twice(
    linked_pair: Callable[..., Pair], history: History
) -> None:
    """500 remote executions (times TETHER_FAULT_SCALE) while the proxy resets 20% of connections.

    Connections die before, during the request or during the response, so the listener
    sometimes applied what the dialer believes lost: it must be sent again and skipped.
    The dialer keeps its connections open while they work, so the proxy also cuts all of
    them every 25 starts: the new ones it then has to open meet the resets.
    The full 500 take about 15 s on a 2-core machine, so the default is not scaled down.
    """
    pair = linked_pair(HUB_DIALS, has_proxy=True, env=SHORT_POLL)
    assert pair.proxy is not None
    push_marked_flows(pair.hub_api)
    pair.proxy.reset_probability(0.2)
    for number in range(scaled(500)):
        child = pair.hub_api.start(
            MARKED_FLOW, remote_workspace_name=HUB_CONFIG, input_value=history.inputs()
        )
        history.requested.add(child["id"])
        if number % 25 == 24:
            pair.proxy.cut_all()
    history.check(*apis(pair), timeout_s=120)
    assert pair.proxy.connections_reset > 0, "the proxy reset no connection"
    pair.proxy.reset_probability(0.0)


@pytest.mark.timeout(NETWORK_TIMEOUT_S)
def test_idle_cuts_shorter_than_the_long_poll_hold_cause_no_failure(
    linked_pair: Callable[..., Pair], history: History
) -> None:
    """A proxy cutting connections idle for 5 s, under an 8 s hold: no failing state, executions flow."""
    idle_cut_s, hold_s = 5.0, 8.0
    pair = linked_pair(EDGE_DIALS, has_proxy=True, env={"TETHER_LONG_POLL_S": str(hold_s)})
    assert pair.proxy is not None
    push_marked_flows(pair.hub_api)
    pair.proxy.idle_timeout(idle_cut_s)
    since = len(pair.dialer.output)
    with LinkWatch(pair) as watch:
        for _ in range(scaled(2)):
            time.sleep(idle_cut_s + 1.5)  # long enough for the held long-poll to be cut
            started = [
                pair.hub_api.start(
                    MARKED_FLOW, remote_workspace_name=HUB_CONFIG, input_value=history.inputs()
                )
                for _ in range(5)
            ]
            history.requested.update(child["id"] for child in started)
            for child in started:
                ended = pair.hub_api.wait_ended(child["id"], timeout_s=5.0)
                assert ended["status"] == "ENDED_SUCCESS", ended
    assert pair.proxy.connections_cut > 0, "the proxy never cut an idle connection"
    for side in ("hub", "edge"):
        assert watch.states(side) == {"connected"}, (side, watch.states(side))
    assert dialer_warnings(pair.dialer, since) == []
    advice = "set --long-poll-s below its idle timeout"
    assert any(advice in line for line in pair.dialer.output[since:]), "the cut went unnoticed"
    history.check(*apis(pair))


@pytest.mark.timeout(NETWORK_TIMEOUT_S)
def test_black_holed_peer_shows_failing_in_bounded_time_and_work_resumes(
    linked_pair: Callable[..., Pair], history: History
) -> None:
    """A peer that accepts and never answers: the dialer says failing within the hold plus its read
    timeout (BLACK_HOLE_BOUND_S), both workspaces keep running local flows, and queued work
    completes once the peer answers again."""
    pair = linked_pair(HUB_DIALS, has_proxy=True, env=SHORT_POLL)
    assert pair.proxy is not None
    push_marked_flows(pair.hub_api)
    for side in ("hub", "edge"):
        pair.api(side).ok("POST", "/flow", json={"name": "local", "script": LOCAL_SCRIPT})
    first = pair.hub_api.start(
        MARKED_FLOW, remote_workspace_name=HUB_CONFIG, input_value=history.inputs()
    )
    history.requested.add(first["id"])
    assert pair.hub_api.wait_ended(first["id"])["status"] == "ENDED_SUCCESS"

    pair.proxy.delay(3600)  # what is on its way stalls
    pair.proxy.set_mode("blackhole")  # new connections are accepted and never answered
    holed_at = time.monotonic()
    for _ in range(5):
        child = pair.hub_api.start(
            MARKED_FLOW, remote_workspace_name=HUB_CONFIG, input_value=history.inputs()
        )
        history.requested.add(child["id"])
    for side in ("hub", "edge"):  # while the dialer waits on the black hole
        ran = pair.api(side).wait_ended(
            pair.api(side).start("local", input_value={"x": 21})["id"], timeout_s=LOCAL_BOUND_S
        )
        assert (ran["status"], ran["output_value"]) == ("ENDED_SUCCESS", {"y": 42}), ran
    status = pair.wait_link_state("hub", "failing", timeout_s=BLACK_HOLE_BOUND_S + 5)
    took_s = time.monotonic() - holed_at
    assert took_s <= BLACK_HOLE_BOUND_S, f"failing only after {took_s:.1f} s"
    assert pair.proxy.url_base in status["last_error"], status
    for side in ("hub", "edge"):
        ran = pair.api(side).run("local", input_value={"x": 1})
        assert ran["status"] == "ENDED_SUCCESS", ran

    pair.proxy.delay(0)
    pair.proxy.set_mode("pass")
    history.check(*apis(pair))
    pair.wait_connected()


LOCAL_SCRIPT = """def handler(system, this, inputs):
    this.save(output_value={"y": inputs["x"] * 2})
"""
