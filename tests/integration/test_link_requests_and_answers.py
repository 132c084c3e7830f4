"""Requests and answers are told apart on the link endpoint: an answer posted back as a
request, a request under another sender name, and a request to a dialing sync config are
refused with the one 401, and change nothing."""

from __future__ import annotations

from typing import Any

from tests.support.envelopes import HQ_HELLO, LISTENER, Link, assert_rejected, create_listener
from tether.link import envelope, keys


def test_an_answer_posted_back_as_a_request_was_accepted(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """An answer of 'edge' (to 'hq') reflected to a sync config 'hq' that trusts edge's key."""
    create_listener(link.api, remote_key, own_key, name="hq", role="controlling")
    answer = link.post(*link.seal(link.start_message()))
    assert answer.status_code == 200, answer.text
    link.settle()
    before = link.state()
    headers = {k: v for k, v in answer.headers.items() if k.lower().startswith("x-tether")}
    assert_rejected(link, link.post(answer.content, headers, name="hq"), before)


def test_a_request_under_another_sender_name_was_accepted(link: Link) -> None:
    """The first sender heard ('hq') binds the link; the same key under another name is refused."""
    assert link.post(*link.seal()).status_code == 200
    before = link.state()
    body, headers = link.seal(link.start_message(), sender="impostor")
    assert_rejected(link, link.post(body, headers), before)
    assert link.api.ok("GET", f"/sync_config/{LISTENER}/status")["remote_name"] == "hq"
    assert link.post(*link.seal(link.start_message())).status_code == 200
    link.settle()


def test_setting_the_remote_key_again_forgets_the_bound_sender_name(link: Link) -> None:
    assert link.post(*link.seal()).status_code == 200
    key = keys.public_pem(link.remote_key)
    link.api.ok("PATCH", f"/sync_config/{LISTENER}", json={"remote_public_key": key})
    assert link.post(*link.seal(sender="renamed")).status_code == 200
    assert link.api.ok("GET", f"/sync_config/{LISTENER}/status")["remote_name"] == "renamed"


def test_a_dialing_sync_config_accepted_inbound_requests(
    link: Link, own_key: Any, remote_key: Any
) -> None:
    """A sync config with a Remote URL opens the link's connections; requests to it are refused."""
    link.api.ok(
        "POST",
        "/sync_config",
        json={
            "name": "dialing",
            "role": "controlled",
            "remote_url": "http://127.0.0.1:9/api/latest/sync_config/hq/sync",
            "own_private_key": keys.private_pem(own_key),
            "remote_public_key": keys.public_pem(remote_key),
        },
    )
    before = link.state()
    body, headers = link.seal(link.start_message(), receiver="dialing")
    answer = link.post(body, headers, name="dialing")
    after = link.state()
    # The dialer of 'dialing' records its own failures meanwhile: compare the rest.
    for state in (before, after):
        state["link_state"] = [s for s in state["link_state"] if s["sync_config"] != "dialing"]
    assert answer.status_code == 401
    assert after == before


def test_a_message_delivered_twice_is_applied_once_and_counted_as_a_repeat(link: Link) -> None:
    """The link status counts what the transport delivered again (the bench's repeat share)."""
    message = link.start_message()
    assert link.post(*link.seal(message)).status_code == 200
    assert link.post(*link.seal(message)).status_code == 200  # a new nonce, the same message
    link.settle()
    status = link.api.ok("GET", f"/sync_config/{LISTENER}/status")
    assert status["messages_received"] == {"received": 2, "repeats": 1}
    assert len(link.received()) == 1


def test_an_answer_delivers_only_what_earlier_answers_did_not_unless_the_dialer_asks_again(
    link: Link,
) -> None:
    """Protocol 2: a dialer's requests that overlap are not each answered with every unacked
    message; a dialer that lost an answer says ``resend`` and gets them all again. A dialer
    of protocol 1 (no ``resend`` in its hello) gets every unacked message in every answer,
    as before: the control that shows the repeats the floor saves."""
    assert link.post(*link.seal(link.start_message())).status_code == 200
    link.settle()  # the listener's outbox now holds the execution's updates, unacked

    def delivered(**hello: Any) -> list[int]:
        changes: dict[str, Any] = {"hello": {**HQ_HELLO, "protocols": [1, 2], **hello}}
        answer = link.post(*link.seal(ack=0, **changes))
        assert answer.status_code == 200, answer.text
        return [message.seq for message in envelope.decode(answer.content).messages]

    everything = delivered(resend=2**63 - 1)
    assert everything, "the execution's end is waiting for the other side"
    assert delivered(resend=0) == [], "on their way in the first answer"
    assert delivered(resend=2**63 - 1) == everything, "asked again: all of them"
    assert delivered(resend=0) == []
    assert delivered(resend=everything[0]) == everything[:1], "only those asked for again"
    assert delivered(resend=0) == []
    hello_1 = {k: v for k, v in HQ_HELLO.items() if k != "resend"}
    for _ in range(2):
        answer = link.post(*link.seal(ack=0, hello=hello_1))
        assert [m.seq for m in envelope.decode(answer.content).messages] == everything
    acked = link.post(
        *link.seal(ack=everything[-1], hello={**HQ_HELLO, "protocols": [1, 2], "resend": 2**63 - 1})
    )
    assert envelope.decode(acked.content).messages == ()
