"""Linked workspaces: remote child round trip and remote executions per second, both dial directions.

Drives two real `tether serve` processes through their REST APIs; never imports the engine.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench import common, local

NAME = "remote"
# each side's sync config is named after the other workspace; flows use the hub's one
HUB_CONFIG, EDGE_CONFIG = "edge", "hub"
CONNECT_TIMEOUT_S = 30.0
ROUND_TRIP_TARGET = 3.0  # issue 3: remote round trip under 3x the local one at the median
RATE_TARGET = 200.0  # issue 3: 200 remote executions per second or more


@dataclass(frozen=True)
class Direction:
    """Which side of the link dials: A, the controlling hub; B, the controlled edge."""

    key: str
    hub_dials: bool

    @property
    def label(self) -> str:
        return f"{NAME} {self.key}"

    @property
    def description(self) -> str:
        if self.hub_dials:
            return "the controlling side dials the controlled one"
        return "the controlled side dials out to the controlling one"


DIRECTIONS = (Direction("A", hub_dials=True), Direction("B", hub_dials=False))


@dataclass(frozen=True)
class Sizes:
    """How much work one run of this benchmark does, per direction."""

    calls: int = 200
    executions: int = 500
    rounds: int = 3
    clients: int = 4


@dataclass(frozen=True)
class Linked:
    """Two served workspaces linked in one direction: the hub controls, the edge is controlled."""

    hub: common.Workspace
    edge: common.Workspace


def run(sizes: Sizes, baseline_ms: float) -> list[common.Figure]:
    """Measure each direction on a fresh pair of workspaces, stopping them after."""
    figures: list[common.Figure] = []
    for direction in DIRECTIONS:
        figures += measure_direction(direction, sizes, baseline_ms)
    return figures


def measure_direction(
    direction: Direction, sizes: Sizes, baseline_ms: float
) -> list[common.Figure]:
    """Local and remote figures of one hub, measured back to back in the same workspaces."""
    burst_sizes = local.Sizes(sizes.calls, sizes.executions, sizes.rounds, sizes.clients)
    with linked_pair(direction) as pair, pair.hub.client() as client:
        local.create_flow(client, "noop", local.NOOP_SCRIPT)
        local.create_flow(client, "parent", local.PARENT_SCRIPT)
        local_trips = local.round_trips_ms(client, sizes.calls)
        remote_trips = local.round_trips_ms(client, sizes.calls, remote=HUB_CONFIG)
        local_bursts = local.run_bursts(pair.hub, client, burst_sizes, "local")
        remote_bursts = local.run_bursts(pair.hub, client, burst_sizes, "remote", remote=HUB_CONFIG)
        local_fan_out = local.fan_out_rates(client, burst_sizes)
        remote_fan_out = local.fan_out_rates(client, burst_sizes, remote=HUB_CONFIG)
    figures = direction_figures(
        direction, sizes, baseline_ms, (local_trips, remote_trips), (local_bursts, remote_bursts)
    )
    note = f"{sizes.executions} started at once by one flow (wait=False), until all ended"
    label = direction.label
    return [
        *figures,
        common.rate_figure(
            label,
            "local executions per second, started by a flow",
            local_fan_out,
            baseline_ms,
            note,
        ),
        common.rate_figure(
            label,
            "remote executions per second, started by a flow",
            remote_fan_out,
            baseline_ms,
            f"{note}; target {RATE_TARGET:g}/s (issue 3)",
        ),
    ]


def direction_figures(
    direction: Direction,
    sizes: Sizes,
    baseline_ms: float,
    trips: tuple[list[float], list[float]],
    bursts: tuple[local.Bursts, local.Bursts],
) -> list[common.Figure]:
    """One direction's figures, local and remote side by side, and their ratios."""
    label = direction.label
    local_trips, remote_trips = trips
    local_bursts, remote_bursts = bursts
    started = f"{sizes.executions} started over the API by {sizes.clients} clients"
    return [
        common.latency_figure(
            label, "local child round trip", local_trips, baseline_ms, "in the hub, same run"
        ),
        common.latency_figure(
            label, "remote child round trip", remote_trips, baseline_ms, direction.description
        ),
        common.comparison_figure(
            label,
            "remote / local round trip",
            statistics.median(remote_trips),
            statistics.median(local_trips),
            f"medians; target below {ROUND_TRIP_TARGET:g} (issue 3)",
        ),
        common.rate_figure(
            label, "local executions per second", local_bursts.rates, baseline_ms, started
        ),
        common.rate_figure(
            label,
            "remote executions per second",
            remote_bursts.rates,
            baseline_ms,
            f"{started}, until all ended in the hub; target {RATE_TARGET:g}/s (issue 3)",
        ),
        common.comparison_figure(
            label,
            "remote / local executions per second",
            statistics.median(remote_bursts.rates),
            statistics.median(local_bursts.rates),
            "medians",
        ),
        common.latency_figure(
            label,
            "remote created to ended, in a burst",
            remote_bursts.latencies_ms,
            baseline_ms,
            "the hub's timestamps",
        ),
    ]


@contextlib.contextmanager
def linked_pair(direction: Direction) -> Iterator[Linked]:
    """Two fresh workspaces linked with no sync interval; both stopped after, also on failure."""
    with (
        common.served_workspace("bench-hub") as hub,
        common.served_workspace("bench-edge") as edge,
    ):
        link(hub, edge, direction)
        wait_connected(hub, HUB_CONFIG)
        wait_connected(edge, EDGE_CONFIG)
        yield Linked(hub, edge)


def link(
    hub: common.Workspace,
    edge: common.Workspace,
    direction: Direction,
    *,
    base_url: str | None = None,
) -> None:
    """Create the two sync configs, each holding its own new key and the other's public key.

    ``base_url`` replaces the listener's API address in the dialer's remote_url (a proxy's).
    """
    hub_private, hub_public = key_pair()
    edge_private, edge_public = key_pair()
    hub_config = {
        "name": HUB_CONFIG,
        "role": "controlling",
        "own_private_key": hub_private,
        "remote_public_key": edge_public,
    }
    edge_config = {
        "name": EDGE_CONFIG,
        "role": "controlled",
        "own_private_key": edge_private,
        "remote_public_key": hub_public,
    }
    if direction.hub_dials:
        hub_config["remote_url"] = f"{base_url or edge.api_url}/sync_config/{EDGE_CONFIG}/sync"
        order = ((edge, edge_config), (hub, hub_config))
    else:
        edge_config["remote_url"] = f"{base_url or hub.api_url}/sync_config/{HUB_CONFIG}/sync"
        order = ((hub, hub_config), (edge, edge_config))
    for workspace, config in order:  # the listener's first: the dialer's first call finds it
        with workspace.client() as client:
            client.post("/sync_config", json=config).raise_for_status()


def sync_url(workspace: common.Workspace, config_name: str) -> str:
    return f"{workspace.api_url}/sync_config/{config_name}/sync"


def key_pair() -> tuple[str, str]:
    """A new 2048-bit RSA key: private PEM (PKCS#8) and public PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


def wait_connected(workspace: common.Workspace, config_name: str) -> None:
    """Wait until the link status of ``config_name`` reads connected."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    status: dict[str, Any] = {}
    with workspace.client() as client:
        while time.monotonic() < deadline:
            answer = client.get(f"/sync_config/{config_name}/status")
            answer.raise_for_status()
            status = answer.json()
            if status.get("state") == "connected":
                return
            time.sleep(local.POLL_S)
    raise RuntimeError(
        f"sync config {config_name!r} at {workspace.url} never connected: {status}\n"
        + "".join(workspace.output[-20:])
    )
