"""A forger's kit for the link endpoint: envelopes sealed with tether's own code, and the store's state.

The workspace under test listens on sync config 'edge' (role controlled); what arrives is
what the controlling side's sync config 'hq' would send. Nothing here fakes the endpoint.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.workspace import ApiClient
from tether.actions.context import Context
from tether.link import envelope, keys, protocol
from tether.link.envelope import Envelope, Message
from tether.store import schema
from tether.store.database import Database
from tether.store.sync_configs import SyncConfig

LISTENER = "edge"  # this workspace's sync config: role controlled, no Remote URL
SENDER = "hq"  # the controlling workspace's sync config that signs what arrives
QUICK_SCRIPT = "def handler(system, this):\n    this.save(output_value={'ok': True})\n"
WAITING_SCRIPT = (
    "def handler(system, this):\n"
    "    while not system.setting('release').exists():\n"
    "        this.sleep(0.02)\n"
)
HQ_HELLO = {"workspace": "hq", "role": "controlling", "protocols": [1], "poll_s": 0}
REJECTED = {"error": "rejected", "message": "the envelope was rejected"}


@dataclasses.dataclass(frozen=True)
class Sealed:
    """One request as it goes over the wire: the exact body bytes and the headers."""

    body: bytes
    headers: dict[str, str]


@dataclasses.dataclass
class Link:
    """The listener under test and a forger's kit for what the other side would send."""

    api: ApiClient
    client: Any  # a Starlette TestClient (in-process) or an httpx.Client (tether serve)
    remote_key: rsa.RSAPrivateKey
    max_skew_s: float

    @property
    def fingerprint(self) -> str:
        return keys.fingerprint(self.remote_key.public_key())

    def start_message(
        self, seq: int = 1, execution_id: str | None = None, script: str = QUICK_SCRIPT
    ) -> Message:
        return start_message(seq, execution_id, script)

    def envelope(self, *messages: Message, **changes: Any) -> Envelope:
        fields: dict[str, Any] = {
            "protocol": envelope.PROTOCOL_VERSION,
            "sender": SENDER,
            "receiver": LISTENER,
            "key": self.fingerprint,
            "nonce": envelope.new_nonce(),
            "sent_at": time.time(),
            "ack": 0,
            "messages": messages,
            "reply_to": None,
            "hello": HQ_HELLO,
        }
        return Envelope(**(fields | changes))

    def seal(
        self, *messages: Message, signer: rsa.RSAPrivateKey | None = None, **changes: Any
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a signed request, as a dialer makes them."""
        body = envelope.encode(self.envelope(*messages, **changes))
        return body, signed_headers(body, signer or self.remote_key)

    def capture(self, *messages: Message) -> Sealed:
        """A request sealed by ``protocol.seal``, the dialer's own code, from sync config 'hq'."""
        return seal_as_dialer(self.remote_key, *messages)

    def post(
        self, body: bytes | Iterator[bytes], headers: dict[str, str], name: str = LISTENER
    ) -> httpx.Response:
        answer: httpx.Response = self.client.post(
            f"/sync_config/{name}/sync", content=body, headers=headers
        )
        return answer

    def state(self) -> dict[str, Any]:
        """Everything a request could change: row counts and the link's state rows."""
        return store_state(self.client.app.state.ctx.db)

    def received(self) -> list[dict[str, Any]]:
        return [e for e in self.api.ok("GET", "/execution") if e["sync_config"] == LISTENER]

    def applied_seq(self) -> int:
        status: dict[str, Any] = self.api.ok("GET", f"/sync_config/{LISTENER}/status")
        return int(status["applied_seq"])

    def settle(self) -> None:
        """Wait until every received execution has ended, so nothing changes behind a test."""
        for record in self.received():
            self.api.wait_ended(record["id"])


def start_message(
    seq: int = 1, execution_id: str | None = None, script: str = QUICK_SCRIPT
) -> Message:
    """An ``execution.start`` as the controlling side sends it."""
    body = {
        "execution_id": execution_id or str(uuid.uuid4()),
        "name": "remote one",
        "flow_name": "f",
        "script": script,
        "input_value": {"a": 1},
        "max_runtime_s": None,
    }
    return Message(seq=seq, type="execution.start", body=body)


def signed_headers(body: bytes, signer: rsa.RSAPrivateKey) -> dict[str, str]:
    """The headers a dialer sends with ``body`` signed by ``signer``."""
    return {
        envelope.SIGNATURE_HEADER: envelope.sign(signer, body),
        envelope.KEY_HEADER: keys.fingerprint(signer.public_key()),
        "Content-Type": "application/json",
    }


def dialer_config(secret: bytes, key: rsa.RSAPrivateKey) -> SyncConfig:
    """The controlling side's sync config 'hq', dialing 'edge', signing with ``key``."""
    now = time.time()
    return SyncConfig(
        name=SENDER,
        is_enabled=True,
        remote_url=f"http://testserver/api/latest/sync_config/{LISTENER}/sync",
        role="controlling",
        ca_certificate=None,
        verify_ssl=True,
        own_private_key=keys.encrypt_with_secret(secret, keys.private_pem(key)),
        next_own_private_key=None,
        remote_public_keys=[],
        send_all_executions=False,
        sync_interval_s=None,
        accepted_scripts=None,
        run_as=None,
        allow_onward_remote=False,
        max_running=None,
        proxy_url=None,
        created_at=now,
        updated_at=now,
    )


def seal_as_dialer(key: rsa.RSAPrivateKey, *messages: Message, ack: int = 0) -> Sealed:
    """A request from 'hq' to 'edge' sealed by ``protocol.seal``, exactly as the dialer seals it."""
    secret = b"the controlling side's workspace secret"
    ctx = Context(db=None, events=None, workspace_name=SENDER, secret=secret)  # type: ignore[arg-type]
    hq = dialer_config(secret, key)
    sealed = protocol.seal(
        ctx,
        protocol.KeyRing(ctx),
        hq,
        receiver=LISTENER,
        ack=ack,
        messages=list(messages),
        hello_=protocol.hello(ctx, hq),
    )
    return Sealed(sealed.body, dict(sealed.headers))


def store_state(db: Database) -> dict[str, Any]:
    """Row counts of what a request could add, and the link's state rows, read from the store."""
    with db.begin() as conn:

        def count(table: sa.Table) -> int:
            return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()

        links = conn.execute(sa.select(schema.link_state).order_by("sync_config"))
        return {
            "executions": count(schema.execution),
            "execution_log": count(schema.execution_log),
            "outbox": count(schema.outbox),
            "nonces": count(schema.nonce),
            "link_state": [dict(row._mapping) for row in links],
        }


def create_listener(
    api: ApiClient,
    own_key: rsa.RSAPrivateKey,
    remote_key: rsa.RSAPrivateKey,
    name: str = LISTENER,
    role: str = "controlled",
) -> None:
    """Create sync config ``name``: a listener (no Remote URL) with ``role``, trusting ``remote_key``."""
    api.ok(
        "POST",
        "/sync_config",
        json={
            "name": name,
            "role": role,
            "own_private_key": keys.private_pem(own_key),
            "remote_public_key": keys.public_pem(remote_key),
        },
    )


def create_controlling(
    api: ApiClient, own_key: rsa.RSAPrivateKey, remote_key: rsa.RSAPrivateKey, name: str
) -> None:
    """Create sync config ``name``: a listener with role controlling, trusting ``remote_key``."""
    create_listener(api, own_key, remote_key, name, role="controlling")


def assert_rejected(link: Link, answer: httpx.Response, before: dict[str, Any]) -> None:
    """A 401 with the one answer every rejection gets, and nothing in the store changed."""
    assert answer.status_code == 401, answer.text
    assert answer.json() == REJECTED
    assert envelope.SIGNATURE_HEADER.lower() not in answer.headers
    assert link.state() == before


def flip_byte(body: bytes, index: int) -> bytes:
    return body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
