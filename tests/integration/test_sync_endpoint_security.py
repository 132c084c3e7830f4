"""The link endpoint against forged, damaged and replayed envelopes: 401 (413) and no state change.

Envelopes are built and signed with tether's own envelope code, as the controlling side
'hq' would send them to this workspace's sync config 'edge' (role controlled, listener).
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from tests.support.envelopes import (
    LISTENER,
    SENDER,
    WAITING_SCRIPT,
    Link,
    assert_rejected,
    create_controlling,
    create_listener,
    flip_byte,
)
from tether.link import envelope, keys
from tether.link.envelope import Message
from tether.web.link_lane import LinkLane


def forgeries(
    link: Link, stranger: rsa.RSAPrivateKey
) -> dict[str, tuple[bytes, dict[str, Any], str]]:
    """Requests that must all be refused: name -> (body, headers, sync config in the URL)."""
    start = link.start_message()
    cases: dict[str, tuple[bytes, dict[str, Any], str]] = {}

    body, headers = link.seal(start)
    cases["unsigned"] = (body, {k: v for k, v in headers.items() if "Signature" not in k}, LISTENER)
    cases["signature not base64"] = (body, {**headers, envelope.SIGNATURE_HEADER: "%%%"}, LISTENER)
    cases["signature of other bytes"] = (
        body,
        {**headers, envelope.SIGNATURE_HEADER: envelope.sign(link.remote_key, body + b" ")},
        LISTENER,
    )
    for where in (0, len(body) // 2, len(body) - 1):
        cases[f"byte {where} flipped"] = (flip_byte(body, where), headers, LISTENER)

    stranger_print = keys.fingerprint(stranger.public_key())
    body, headers = link.seal(start, signer=stranger, key=stranger_print)
    cases["signed by an unknown key"] = (body, headers, LISTENER)
    body, headers = link.seal(start, signer=stranger)
    cases["signed by another key, naming the known one"] = (
        body,
        {**headers, envelope.KEY_HEADER: link.fingerprint},
        LISTENER,
    )
    body, headers = link.seal(start)
    cases["key header names an unknown key"] = (
        body,
        {**headers, envelope.KEY_HEADER: stranger_print},
        LISTENER,
    )

    for label, shift in (("stale", -1), ("from the future", 1)):
        sent_at = time.time() + shift * (link.max_skew_s + 5)
        cases[f"send time {label}"] = (*link.seal(start, sent_at=sent_at), LISTENER)
    cases["for another receiver"] = (*link.seal(start, receiver="other"), LISTENER)
    cases["for a sibling sync config trusting the same key"] = (*link.seal(start), "edge2")
    cases["unknown protocol version"] = (
        *link.seal(start, protocol=envelope.PROTOCOL_VERSION + 1),
        LISTENER,
    )
    body, headers = link.seal(Message(1, "execution.launch", start.body))
    cases["unknown message type"] = (body, headers, LISTENER)
    return cases


def test_forged_and_damaged_envelopes_are_refused_without_a_trace(
    link: Link, stranger_key: Any, own_key: Any, remote_key: Any, subtests: Any
) -> None:
    """Each is answered 401 with the one rejection body, and no row of the store changes."""
    create_listener(link.api, own_key, remote_key, name="edge2")
    for case, (body, headers, name) in forgeries(link, stranger_key).items():
        with subtests.test(case=case):
            before = link.state()
            assert_rejected(link, link.post(body, headers, name=name), before)
    assert link.api.ok("GET", "/execution") == []


def test_oversized_body_is_refused_with_413(link: Link, settings: Any, subtests: Any) -> None:
    """With a Content-Length and in chunks without one, before the body is read whole."""
    start = link.start_message()
    big = Message(start.seq, start.type, {**start.body, "name": "x" * settings.max_body_bytes})
    body, headers = link.seal(big)
    chunk = b"x" * 65536
    chunks = [chunk] * (settings.max_body_bytes // len(chunk) + 2)
    for case, content in (("with a length", body), ("chunked", iter(chunks))):
        with subtests.test(case=case):
            before = link.state()
            answer = link.post(content, headers)
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"] == "payload_too_large"
            assert link.state() == before


def test_unknown_disabled_and_badly_signed_get_the_same_answer(
    link: Link, stranger_key: Any
) -> None:
    """Names cannot be probed: the three answers are byte for byte the same."""
    body, headers = link.seal(link.start_message(), signer=stranger_key)
    bad_signature = link.post(body, headers)
    body, headers = link.seal(link.start_message(), receiver="nosuch")
    before = link.state()
    unknown = link.post(body, headers, name="nosuch")
    assert_rejected(link, unknown, before)
    link.api.ok("PATCH", f"/sync_config/{LISTENER}", json={"enabled": False})
    body, headers = link.seal(link.start_message())
    before = link.state()
    disabled = link.post(body, headers)
    assert_rejected(link, disabled, before)
    assert bad_signature.status_code == unknown.status_code == disabled.status_code == 401
    assert bad_signature.content == unknown.content == disabled.content
    assert link.received() == []


def test_valid_start_creates_one_execution_and_a_signed_answer(link: Link) -> None:
    """Sealed by protocol.seal as the dialer does it; the answer verifies with edge's public key."""
    start = link.start_message(script=WAITING_SCRIPT)
    sealed = link.capture(start)
    answer = link.post(sealed.body, sealed.headers)
    assert answer.status_code == 200, answer.text

    received = link.received()
    assert len(received) == 1
    assert received[0]["status"] in ("QUEUED", "RUNNING"), received[0]
    by_origin = link.api.ok("GET", "/execution", params={"origin": "received"})
    assert [e["id"] for e in by_origin] == [received[0]["id"]]
    assert received[0]["remote_execution_id"] == start.body["execution_id"]
    assert (received[0]["script"], received[0]["input_value"]) == (WAITING_SCRIPT, {"a": 1})
    assert link.applied_seq() == 1

    own_public_key = link.api.ok("GET", f"/sync_config/{LISTENER}")["own_public_key"]
    verifier = keys.load_public_key(own_public_key)
    signature = answer.headers[envelope.SIGNATURE_HEADER]
    assert envelope.verify_signature(verifier, answer.content, signature)
    assert not envelope.verify_signature(verifier, flip_byte(answer.content, 10), signature)
    reply = envelope.decode(answer.content)
    assert reply.reply_to == hashlib.sha256(sealed.body).hexdigest()
    assert (reply.sender, reply.receiver, reply.ack) == (LISTENER, SENDER, 1)
    assert reply.key == keys.fingerprint(verifier) == answer.headers[envelope.KEY_HEADER]
    assert reply.hello is not None and reply.hello["role"] == "controlled"
    link.api.set_setting("release", True)
    assert link.api.wait_ended(received[0]["id"])["status"] == "ENDED_SUCCESS"


def test_replayed_envelope_is_refused_and_runs_nothing_twice(link: Link) -> None:
    """Replayed byte for byte after it was accepted, and raced by several threads at once."""
    body, headers = link.seal(link.start_message(seq=1))
    assert link.post(body, headers).status_code == 200
    assert len(link.received()) == 1
    link.settle()
    before = link.state()
    assert_rejected(link, link.post(body, headers), before)
    assert len(link.received()) == 1

    body, headers = link.seal(link.start_message(seq=2))
    barrier = threading.Barrier(6)
    answers: list[httpx.Response] = []

    def post() -> None:
        barrier.wait()
        answers.append(link.post(body, headers))

    threads = [threading.Thread(target=post) for _ in range(barrier.parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] + [401] * (barrier.parties - 1), [a.text for a in answers]
    assert len(link.received()) == 2
    assert link.applied_seq() == 2
    link.settle()
    before = link.state()
    assert_rejected(link, link.post(body, headers), before)


def test_a_start_takes_effect_once_per_seq_and_once_per_execution_id(link: Link) -> None:
    """A new envelope repeating seq 1 skips it; a start of a known id under seq 2 does nothing."""
    start = link.start_message(seq=1)
    assert link.post(*link.seal(start)).status_code == 200
    link.settle()

    answer = link.post(*link.seal(start))
    assert answer.status_code == 200, answer.text
    assert len(link.received()) == 1
    assert link.applied_seq() == 1

    again = link.start_message(seq=2, execution_id=start.body["execution_id"])
    answer = link.post(*link.seal(again))
    assert answer.status_code == 200, answer.text
    assert len(link.received()) == 1
    assert link.applied_seq() == 2


def test_start_on_a_controlling_sync_config_creates_nothing(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """Only a controlled side runs what the other side starts."""
    create_controlling(link.api, own_key, remote_key, "boss")
    hello = {"workspace": "hq", "role": "controlled", "protocols": [1], "poll_s": 0}
    body, headers = link.seal(link.start_message(), receiver="boss", hello=hello)
    answer = link.post(body, headers, name="boss")
    assert answer.status_code == 200, answer.text
    assert link.api.ok("GET", "/execution") == []
    status = link.api.ok("GET", "/sync_config/boss/status")
    assert status["state"] == "connected", status
    assert status["applied_seq"] == 1  # consumed, so the link goes on, but never acted on


def test_first_contact_mismatch_puts_the_link_in_failing_until_mended(link: Link) -> None:
    """Same role on both sides, or no common protocol: failing, the problem and fix in words."""
    start = link.start_message()
    hello = {"workspace": "other-edge", "role": "controlled", "protocols": [1], "poll_s": 0}
    answer = link.post(*link.seal(start, hello=hello))
    assert envelope.decode(answer.content).messages == ()
    status = link.api.ok("GET", f"/sync_config/{LISTENER}/status")
    assert status["state"] == "failing", status
    message = status["last_error"]
    assert "both sides" in message and "'controlled'" in message, message
    assert "other-edge" in message and "change the role" in message, message
    assert (link.received(), status["applied_seq"]) == ([], 0)

    hello = {"workspace": "hq", "role": "controlling", "protocols": [7], "poll_s": 0}
    link.post(*link.seal(start, hello=hello))
    status = link.api.ok("GET", f"/sync_config/{LISTENER}/status")
    assert status["state"] == "failing", status
    assert "no common protocol version" in status["last_error"], status
    assert "upgrade the older side" in status["last_error"], status
    assert (link.received(), status["applied_seq"]) == ([], 0)

    assert link.post(*link.seal(start)).status_code == 200
    status = link.api.ok("GET", f"/sync_config/{LISTENER}/status")
    assert (status["state"], status["last_error"]) == ("connected", None)
    assert status["remote_workspace"] == "hq" and status["remote_role"] == "controlling"
    assert len(link.received()) == 1
    link.settle()


def test_listener_without_its_own_key_applies_nothing_and_says_why(link: Link) -> None:
    """It could not sign its answer: 401, nothing applied, and the status names the fix."""
    link.api.ok("PATCH", f"/sync_config/{LISTENER}", json={"own_private_key": ""})
    answer = link.post(*link.seal(link.start_message()))
    assert answer.status_code == 401, answer.text
    assert link.received() == []
    status = link.api.ok("GET", f"/sync_config/{LISTENER}/status")
    assert status["state"] == "failing" and status["applied_seq"] == 0, status
    assert "no own_private_key" in status["last_error"], status


def test_the_link_lane_answers_before_the_router_also_below_a_root_path(link: Link) -> None:
    """web.link_lane serves the endpoint itself (FastAPI's router never sees a link request),
    also when a proxy mounts the workspace below a path; everything else passes through."""
    passed_on: list[str] = []

    async def router(scope: Scope, _receive: Receive, _send: Send) -> None:
        passed_on.append(f"{scope['method']} {scope['path']}")

    lane = LinkLane(
        router,
        link.client.app.state.linker.listener,
        api_prefix="/api/latest",
        max_body_bytes=envelope.MAX_BODY_BYTES,
    )
    sealed = link.capture(link.start_message())

    async def call(method: str, path: str, root_path: str = "") -> tuple[int | None, bytes]:
        scope = {
            "type": "http",
            "method": method,
            "path": root_path + path,
            "root_path": root_path,
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in sealed.headers.items()],
        }
        chunks = [{"type": "http.request", "body": sealed.body, "more_body": False}]
        sent: list[AsgiMessage] = []

        async def receive() -> AsgiMessage:
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        async def send(message: AsgiMessage) -> None:
            sent.append(message)

        await lane(scope, receive, send)
        status = sent[0]["status"] if sent else None
        return status, b"".join(m.get("body", b"") for m in sent[1:])

    async def calls() -> list[tuple[int | None, bytes]]:
        return [
            await call("POST", f"/api/latest/sync_config/{LISTENER}/sync", root_path="/tether"),
            await call("POST", f"/api/latest/sync_config/{LISTENER}/sync"),  # a replay
            await call("GET", f"/api/latest/sync_config/{LISTENER}/sync"),
            await call("POST", f"/api/latest/sync_config/{LISTENER}/sync/more"),
        ]

    answers = link.client.portal.call(calls)  # on the app's own event loop
    assert answers[0][0] == 200, answers[0]
    assert envelope.decode(answers[0][1]).reply_to == hashlib.sha256(sealed.body).hexdigest()
    assert answers[1][0] == 401 and b'"rejected"' in answers[1][1], answers[1]
    assert answers[2:] == [(None, b""), (None, b"")]
    assert passed_on == [
        f"GET /api/latest/sync_config/{LISTENER}/sync",
        f"POST /api/latest/sync_config/{LISTENER}/sync/more",
    ]
    link.settle()
