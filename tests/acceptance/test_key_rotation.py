"""Key rotation without an outage: both sides change keys under steady traffic.

The procedure (docs/operators-guide.md): set next_own_private_key on one side, add its
public key to the other side's remote_public_key list, rotate_key, then drop the old key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.acceptance.conftest import HUB_DIALS, KeyPair, Pair, generated_keys
from tests.support.waiting import wait_until
from tests.support.workspace import ApiClient
from tether.link import envelope, keys

DOUBLE = (
    "def handler(system, this, inputs):\n    this.save(output_value={'twice': inputs['n'] * 2})\n"
)
REJECTION_SIGNS = ("sync envelope rejected", "refused our envelope", "did not verify")


class Traffic:
    """Starts a remote execution every few milliseconds until stopped."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self.started: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            body = {"input_value": {"n": n}, "remote_workspace_name": "edge"}
            self.started.append((self._api.start("double", **body)["id"], n))
            n += 1
            time.sleep(0.02)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait_for_more(self, count: int = 5) -> None:
        """Let ``count`` more executions start and end, so that the link exchanged meanwhile."""
        target = len(self.started) + count
        wait_until(lambda: len(self.started) >= target, f"{count} more executions to start")
        self._api.wait_ended(self.started[target - 1][0])


def _rotate(
    own_side: ApiClient,
    own_config: str,
    other_side: ApiClient,
    other_config: str,
    old: KeyPair,
    traffic: Traffic,
) -> KeyPair:
    """One side's key rotation, step by step as the operator's guide says."""
    new = generated_keys()
    view = own_side.ok(
        "PATCH", f"/sync_config/{own_config}", json={"next_own_private_key": new.private}
    )
    assert view["next_own_key_fingerprint"] == keys.fingerprint(keys.load_public_key(new.public))
    other_side.ok(
        "PATCH",
        f"/sync_config/{other_config}",
        json={"remote_public_key": [old.public, view["next_own_public_key"]]},
    )
    traffic.wait_for_more()
    rotated = own_side.ok("POST", f"/sync_config/{own_config}/rotate_key")
    assert rotated["own_key_fingerprint"] == view["next_own_key_fingerprint"]
    assert rotated["next_own_public_key"] is None
    traffic.wait_for_more()
    other_side.ok("PATCH", f"/sync_config/{other_config}", json={"remote_public_key": new.public})
    traffic.wait_for_more()
    return new


def _probe(pair: Pair, signer: KeyPair) -> int:
    """The edge's answer to an empty envelope from 'the hub' signed by ``signer``."""
    private = keys.load_private_key(signer.private)
    sealed = envelope.Envelope(
        protocol=envelope.PROTOCOL_VERSION,
        sender="edge",
        receiver="hub",
        key=keys.fingerprint(private.public_key()),
        nonce=envelope.new_nonce(),
        sent_at=time.time(),
        ack=0,
        messages=(),
        hello={"workspace": "hub", "role": "controlling", "protocols": [1], "poll_s": 0},
    )
    body = envelope.encode(sealed)
    headers = {
        envelope.SIGNATURE_HEADER: envelope.sign(private, body),
        envelope.KEY_HEADER: sealed.key,
        "Content-Type": "application/json",
    }
    url = f"{pair.edge.api_url}/sync_config/hub/sync"
    return httpx.post(url, content=body, headers=headers, timeout=10).status_code


@pytest.fixture
def rotating_pair(linked_pair: Callable[..., Pair]) -> Iterator[tuple[Pair, KeyPair, KeyPair]]:
    hub_keys, edge_keys = generated_keys(), generated_keys()
    pair = linked_pair(HUB_DIALS, hub_keys=hub_keys, edge_keys=edge_keys)
    pair.hub_api.create_flow("double", DOUBLE)
    yield pair, hub_keys, edge_keys


def test_both_sides_rotate_keys_under_steady_traffic_and_no_valid_envelope_is_rejected(
    rotating_pair: tuple[Pair, KeyPair, KeyPair],
) -> None:
    pair, hub_old, edge_old = rotating_pair
    traffic_api = pair.hub.client()
    with Traffic(traffic_api) as traffic:
        traffic.wait_for_more()
        hub_new = _rotate(pair.hub_api, "edge", pair.edge_api, "hub", hub_old, traffic)
        _rotate(pair.edge_api, "hub", pair.hub_api, "edge", edge_old, traffic)
    for execution_id, n in traffic.started:
        record = pair.hub_api.wait_ended(execution_id)
        assert (record["status"], record["output_value"]) == ("ENDED_SUCCESS", {"twice": 2 * n})
    output = pair.output()
    assert not [sign for sign in REJECTION_SIGNS if sign in output], output[-3000:]
    assert pair.status("hub")["state"] == "connected"

    # The removed key is refused; the current one is accepted (so the refusal is the key's).
    assert _probe(pair, hub_old) == 401
    assert _probe(pair, hub_new) == 200
    # ...and the refusal shows in the log the check above searched, so that check can fail.
    wait_until(
        lambda: "sync envelope rejected" in pair.output(), "the refused envelope in the log", 10
    )
    traffic_api.client.close()


def test_rotate_key_without_a_next_key_is_a_conflict_that_says_what_to_do(
    rotating_pair: tuple[Pair, KeyPair, KeyPair],
) -> None:
    pair, _, _ = rotating_pair
    answer = pair.hub_api.post("/sync_config/edge/rotate_key")
    assert answer.status_code == 409
    assert "next_own_private_key" in answer.json()["message"]
