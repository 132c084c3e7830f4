"""Two real `tether serve` processes linked to each other, in either dial direction.

Every workspace started here is stopped at teardown and its files (data, keys, certificates)
are removed; nothing is left in the temporary directory.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient, ServedWorkspace, flow_writable_dir
from tether.link import keys

HUB_DIALS = "hub_dials"  # the seed's setup: the controlling side dials the controlled one
EDGE_DIALS = "edge_dials"  # the private-network setup: the controlled side dials out
DIRECTIONS = (HUB_DIALS, EDGE_DIALS)
LONG_POLL_S = "5"
CONNECT_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KeyPair:
    """A private key in PEM and the matching public key as the other side pastes it."""

    private: str
    public: str


def generated_keys() -> KeyPair:
    key = keys.generate_private_key(2048)
    return KeyPair(keys.private_pem(key), keys.public_pem(key))


@dataclass(frozen=True)
class Tls:
    """Where a listener's HTTPS certificate lives, and the CA the dialer should trust."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    ca_pem: str  # what the dialer's sync config carries as ca_certificate


@dataclass
class Pair:
    """A controlling workspace ``hub`` and a controlled one ``edge``, linked.

    The hub's sync config for the other side is named ``edge``; the edge's is named ``hub``.
    """

    hub: ServedWorkspace
    edge: ServedWorkspace
    direction: str
    root: Path
    tls: Tls | None = None
    proxy: FaultProxy | None = None
    hub_api: ApiClient = field(init=False)
    edge_api: ApiClient = field(init=False)
    # Ended executions seen so far, per side: they must never change again.
    ended: dict[str, dict[str, tuple[str, Any]]] = field(
        default_factory=lambda: {"hub": {}, "edge": {}}
    )

    def __post_init__(self) -> None:
        self.login()

    @property
    def dialer(self) -> ServedWorkspace:
        return self.hub if self.direction == HUB_DIALS else self.edge

    @property
    def listener(self) -> ServedWorkspace:
        return self.edge if self.direction == HUB_DIALS else self.hub

    def login(self) -> None:
        """Log in to both workspaces afresh (a restart forgets the old tokens' sessions)."""
        self.close()
        verify: Any = ssl.create_default_context(cafile=self.tls.ca_file) if self.tls else True
        self.hub_api = self.hub.client(verify=verify)
        self.edge_api = self.edge.client(verify=verify)

    def close(self) -> None:
        """Close the API clients' connections."""
        for side in ("hub_api", "edge_api"):
            api = getattr(self, side, None)
            if api is not None:
                api.client.close()

    def api(self, side: str) -> ApiClient:
        return self.hub_api if side == "hub" else self.edge_api

    def restart(self, side: str) -> None:
        """Start a stopped or killed workspace again on its old port, and log in again."""
        workspace: ServedWorkspace = getattr(self, side)
        workspace.stop(keep_clients=True)
        port = workspace.port()
        workspace.output.append(f"--- restarted on port {port} ---\n")
        workspace.start(port=port)
        self.login()

    def clean_up_after_failure(self) -> None:
        """Bring stopped workspaces back and cancel what a failed test left running."""
        for side in ("hub", "edge"):
            process = getattr(self, side).process
            if process is None or process.poll() is not None:
                self.restart(side)
        for side in ("hub", "edge"):
            for record in self.executions(side):
                if record["origin"] == "local" and not record["status"].startswith("ENDED_"):
                    self.api(side).post(f"/execution/{record['id']}/cancel")

    def status(self, side: str) -> dict[str, Any]:
        name = "edge" if side == "hub" else "hub"
        status: dict[str, Any] = self.api(side).ok("GET", f"/sync_config/{name}/status")
        return status

    def wait_connected(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Both halves report a good exchange (after the first contact, or after a restart)."""

        def connected() -> bool:
            states = {side: self.status(side) for side in ("hub", "edge")}
            assert all(s["state"] == "connected" for s in states.values()), states
            return True

        wait_until(connected, "the link to connect", timeout_s, poll_s=0.05)

    def wait_link_state(
        self, side: str, state: str, timeout_s: float = CONNECT_TIMEOUT_S
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any]:
            status = self.status(side)
            assert status["state"] == state, status
            return status

        return wait_until(reached, f"the {side} link to be {state}", timeout_s, poll_s=0.05)

    def executions(self, side: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.api(side).ok(
            "GET", "/execution", params={"limit": 1000}
        )
        return records

    def assert_settled(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Every execution on both sides has ended, with one final status that both sides agree on.

        Executions that ended before must still have the same status and end time, so a
        final status that changes later (a second end) fails here too.
        """

        def settled() -> dict[str, dict[str, dict[str, Any]]]:
            problems, views = self._settle_problems()
            assert not problems, "\n".join(problems)
            return views

        views = wait_until(settled, "every execution to settle", timeout_s, poll_s=0.05)
        for side, records in views.items():
            for record in records.values():
                final = (record["status"], record["ended_at"])
                seen = self.ended[side].setdefault(record["id"], final)
                assert seen == final, (
                    f"{side} execution {record['id']} ended twice: {seen} then {final}"
                )

    def _settle_problems(self) -> tuple[list[str], dict[str, dict[str, dict[str, Any]]]]:
        views = {side: {r["id"]: r for r in self.executions(side)} for side in ("hub", "edge")}
        hub, edge = views["hub"], views["edge"]
        problems = [
            f"{side} execution {r['id']} ({r['name']}, {r['origin']}) is {r['status']}"
            for side, records in views.items()
            for r in records.values()
            if not r["status"].startswith("ENDED_")
        ]
        received = {r["remote_execution_id"]: r for r in edge.values() if r["origin"] == "received"}
        for child in hub.values():
            if child["remote_workspace_name"] != "edge":
                continue
            twin = received.pop(child["id"], None)
            if twin is None:
                if child["remote_execution_id"] is not None:
                    problems.append(f"hub child {child['id']} points at a missing edge execution")
                continue
            if (twin["status"], twin["message"]) != (child["status"], child["message"]):
                problems.append(
                    f"hub child {child['id']} is {child['status']} ({child['message']!r}) but "
                    f"edge {twin['id']} is {twin['status']} ({twin['message']!r})"
                )
            if child["remote_execution_id"] != twin["id"]:
                problems.append(f"hub child {child['id']} does not name edge {twin['id']}")
        problems += [f"edge {r['id']} came from no hub execution" for r in received.values()]
        for mirror in edge.values():
            source = hub.get(mirror["remote_execution_id"] or "")
            if mirror["origin"] == "mirror" and (
                source is None or source["status"] != mirror["status"]
            ):
                problems.append(f"edge mirror {mirror['id']} differs from its source {source}")
        return problems, views

    def output(self) -> str:
        """Both workspaces' output, for failure messages."""
        return (
            "--- hub ---\n"
            + "".join(self.hub.output)
            + "--- edge ---\n"
            + "".join(self.edge.output)
        )


def link(
    pair: Pair,
    *,
    hub_keys: KeyPair | None = None,
    edge_keys: KeyPair | None = None,
    hub_fields: dict[str, Any] | None = None,
    edge_fields: dict[str, Any] | None = None,
) -> None:
    """Create both sync configs, the listener's first so that the dialer is not refused."""
    hub_keys = hub_keys or generated_keys()
    edge_keys = edge_keys or generated_keys()
    base = pair.proxy.url_base if pair.proxy else pair.listener.url
    hub_config: dict[str, Any] = {
        "name": "edge",
        "role": "controlling",
        "own_private_key": hub_keys.private,
        "remote_public_key": edge_keys.public,
    }
    edge_config: dict[str, Any] = {
        "name": "hub",
        "role": "controlled",
        "own_private_key": edge_keys.private,
        "remote_public_key": hub_keys.public,
    }
    dialer_config = hub_config if pair.direction == HUB_DIALS else edge_config
    other_name = "hub" if pair.direction == HUB_DIALS else "edge"
    dialer_config["remote_url"] = f"{base}/api/latest/sync_config/{other_name}/sync"
    if pair.tls is not None:
        dialer_config["ca_certificate"] = pair.tls.ca_pem
    hub_config.update(hub_fields or {})
    edge_config.update(edge_fields or {})
    first, second = (
        ((pair.edge_api, edge_config), (pair.hub_api, hub_config))
        if pair.direction == HUB_DIALS
        else ((pair.hub_api, hub_config), (pair.edge_api, edge_config))
    )
    for api, config in (first, second):
        api.ok("POST", "/sync_config", json=config)


def make_tls(root: Path) -> Tls:
    """A throwaway CA and a certificate for 127.0.0.1 that it signed."""
    trustme = pytest.importorskip("trustme", reason="trustme makes the throwaway CA")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = root / "cert.pem", root / "key.pem", root / "ca.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    server.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(cert_file, key_file, ca_file, ca.cert_pem.bytes().decode())


class PairFactory:
    """Starts linked pairs and always stops them (and removes their files) at the end."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self.pairs: list[Pair] = []

    def __call__(
        self,
        direction: str = HUB_DIALS,
        *,
        is_tls: bool = False,
        has_proxy: bool = False,
        env: dict[str, str] | None = None,
        hub_keys: KeyPair | None = None,
        edge_keys: KeyPair | None = None,
        hub_fields: dict[str, Any] | None = None,
        edge_fields: dict[str, Any] | None = None,
        is_linked: bool = True,
    ) -> Pair:
        root = Path(tempfile.mkdtemp(prefix="tether-acceptance-"))
        self._stack.callback(shutil.rmtree, root, ignore_errors=True)
        tls = make_tls(root) if is_tls else None
        workspaces = {}
        for name in ("hub", "edge"):
            workspace = ServedWorkspace(
                name, root / name, env={"TETHER_LONG_POLL_S": LONG_POLL_S, **(env or {})}
            )
            is_listener = (name == "edge") == (direction == HUB_DIALS)
            if tls is not None and is_listener:
                workspace.extra_args = ["--tls-cert", str(tls.cert_file)]
                workspace.extra_args += ["--tls-key", str(tls.key_file)]
                workspace.env["TEST_CA_FILE"] = str(tls.ca_file)
            self._stack.callback(workspace.stop)
            workspaces[name] = workspace
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # each start takes a second or two
            for started in pool.map(ServedWorkspace.start, workspaces.values()):
                assert started.url
        proxy = None
        if has_proxy:
            listener = workspaces["edge" if direction == HUB_DIALS else "hub"]
            proxy = FaultProxy("127.0.0.1", listener.port()).start()
            self._stack.callback(proxy.close)
        pair = Pair(workspaces["hub"], workspaces["edge"], direction, root, tls, proxy)
        self._stack.callback(pair.close)
        self.pairs.append(pair)
        if is_linked:
            link(
                pair,
                hub_keys=hub_keys,
                edge_keys=edge_keys,
                hub_fields=hub_fields,
                edge_fields=edge_fields,
            )
            pair.wait_connected()
        return pair


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


def _show_output_on_failure(request: pytest.FixtureRequest, pairs: list[Pair]) -> None:
    if request.node.stash.get(FAILED, False):
        for built in pairs:
            print(built.output())


@pytest.fixture
def linked_pair(request: pytest.FixtureRequest) -> Iterator[Callable[..., Pair]]:
    """Builds linked pairs for one test: ``linked_pair(EDGE_DIALS, is_tls=True)``."""
    with contextlib.ExitStack() as stack:
        factory = PairFactory(stack)
        yield factory
        _show_output_on_failure(request, factory.pairs)


@pytest.fixture(scope="module", params=DIRECTIONS)
def shared_pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """One linked pair per dial direction, shared by the tests of a module that need no special setup."""
    with contextlib.ExitStack() as stack:
        yield PairFactory(stack)(request.param)


@pytest.fixture
def pair(request: pytest.FixtureRequest, shared_pair: Pair) -> Iterator[Pair]:
    """The shared pair, connected; after the test every execution must have settled."""
    shared_pair.wait_connected()
    yield shared_pair
    if request.node.stash.get(FAILED, False):
        shared_pair.clean_up_after_failure()  # so that the next test starts from a quiet pair
    try:
        shared_pair.assert_settled()
    except AssertionError:
        print(shared_pair.output())
        raise
    _show_output_on_failure(request, [shared_pair])


@pytest.fixture
def marker_dir() -> Iterator[Path]:
    """A directory for the files scripts write to prove how often they ran; removed afterwards."""
    path = flow_writable_dir("tether-markers-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
