"""The link envelope: its bytes, its signature, the strict parse and the binding checks."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tether import errors
from tether.link import envelope

FINGERPRINT = "SHA256:" + "A" * 43
NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_envelope(**changes: Any) -> envelope.Envelope:
    fields: dict[str, Any] = {
        "protocol": envelope.PROTOCOL_VERSION,
        "sender": "hq",
        "receiver": "edge-1",
        "key": FINGERPRINT,
        "nonce": "0123456789abcdef0123456789abcdef",
        "sent_at": NOW,
        "ack": 3,
        "messages": (
            envelope.Message(seq=4, type="execution.start", body={"id": "x", "inputs": {"a": 1}}),
            envelope.Message(seq=5, type="execution.cancel", body={"id": "x"}),
        ),
    }
    return envelope.Envelope(**(fields | changes))


def document(**changes: Any) -> dict[str, Any]:
    valid: dict[str, Any] = json.loads(envelope.encode(make_envelope()))
    return valid | changes


def message(**changes: Any) -> dict[str, Any]:
    return {"seq": 1, "type": "execution.update", "body": {}} | changes


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def rejection(body: bytes) -> str:
    with pytest.raises(errors.EnvelopeRejected) as excinfo:
        envelope.decode(body)
    return excinfo.value.reason


# nonce and digest


def test_new_nonce_is_32_hex_characters_and_fresh_each_time() -> None:
    nonces = {envelope.new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(nonce) == 32 and int(nonce, 16) >= 0 for nonce in nonces)


def test_body_digest_is_hex_sha256_of_the_body() -> None:
    assert envelope.body_digest(b"abc") == hashlib.sha256(b"abc").hexdigest()


# encode and decode


def test_decode_returns_what_encode_wrote() -> None:
    sent = make_envelope()
    assert envelope.decode(envelope.encode(sent)) == sent


def test_decode_returns_reply_to_and_hello_that_encode_wrote() -> None:
    sent = make_envelope(
        reply_to=envelope.body_digest(b"request"),
        hello={"workspace": "HQ", "role": "controlling", "protocols": [1]},
        messages=(),
        ack=0,
    )
    assert envelope.decode(envelope.encode(sent)) == sent


def test_decode_keeps_non_ascii_text_in_message_bodies() -> None:
    sent = make_envelope(
        messages=(envelope.Message(seq=1, type="execution.update", body={"message": "fertig ✓"}),)
    )
    assert envelope.decode(envelope.encode(sent)) == sent


def test_encode_writes_compact_json_with_every_field() -> None:
    body = envelope.encode(make_envelope())
    assert b": " not in body and b", " not in body and b"\n" not in body
    assert set(json.loads(body)) == {
        "protocol",
        "sender",
        "receiver",
        "key",
        "nonce",
        "sent_at",
        "ack",
        "messages",
        "reply_to",
        "hello",
    }


def test_encode_writes_the_fields_as_declared() -> None:
    # encode builds its document by hand: a field added to Envelope must be added there too,
    # in the same place; each message is its seq, type and body (spliced in as its text).
    sent = make_envelope(reply_to="ab" * 32, hello={"workspace": "hq", "role": "controlling"})
    fields = {field.name: getattr(sent, field.name) for field in dataclasses.fields(sent)}
    fields["messages"] = [{"seq": m.seq, "type": m.type, "body": m.body} for m in sent.messages]
    expected = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    assert envelope.encode(sent) == expected.encode()


def test_encode_carries_a_body_read_as_text_as_it_is() -> None:
    sent = make_envelope()
    as_read = [envelope.Message.from_json(m.seq, m.type, m.body_json) for m in sent.messages]
    assert envelope.encode(dataclasses.replace(sent, messages=tuple(as_read))) == (
        envelope.encode(sent)
    )
    assert envelope.decode(envelope.encode(sent)).messages == sent.messages


def test_a_body_with_nan_or_infinity_travels_with_them_as_strings() -> None:
    # JSON has neither: sent as they are, the other side would refuse the envelope for ever.
    body = {"output_value": {"ratio": float("nan"), "limits": [float("inf"), -float("inf")]}}
    sent = make_envelope(messages=(envelope.Message(1, "execution.update", body),))
    (received,) = envelope.decode(envelope.encode(sent)).messages
    assert received.body == {"output_value": {"ratio": "nan", "limits": ["inf", "-inf"]}}


def test_decode_accepts_an_integer_sent_at() -> None:
    assert envelope.decode(dumps(document(sent_at=1_700_000_000))).sent_at == 1_700_000_000.0


# sign and verify


def test_verify_signature_accepts_what_sign_signed(key: rsa.RSAPrivateKey) -> None:
    body = envelope.encode(make_envelope())
    assert envelope.verify_signature(key.public_key(), body, envelope.sign(key, body))


def test_sign_uses_pss_with_sha256_mgf1_sha256_and_a_32_byte_salt(key: rsa.RSAPrivateKey) -> None:
    signature = base64.b64decode(envelope.sign(key, b"body"), validate=True)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    key.public_key().verify(signature, b"body", pss, hashes.SHA256())  # raises if not


def test_verify_signature_accepts_a_signature_made_by_another_pss_implementation(
    key: rsa.RSAPrivateKey,
) -> None:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = base64.b64encode(key.sign(b"body", pss, hashes.SHA256())).decode()
    assert envelope.verify_signature(key.public_key(), b"body", signature)


def test_verify_signature_fails_when_one_body_byte_is_flipped(key: rsa.RSAPrivateKey) -> None:
    body = envelope.encode(make_envelope())
    signature = envelope.sign(key, body)
    flipped = bytes([body[0] ^ 0x01]) + body[1:]
    assert not envelope.verify_signature(key.public_key(), flipped, signature)


def test_verify_signature_fails_when_one_signature_byte_is_flipped(key: rsa.RSAPrivateKey) -> None:
    raw = bytearray(base64.b64decode(envelope.sign(key, b"body")))
    raw[10] ^= 0x01
    signature = base64.b64encode(bytes(raw)).decode()
    assert not envelope.verify_signature(key.public_key(), b"body", signature)


def test_verify_signature_fails_with_another_key(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    signature = envelope.sign(key, b"body")
    assert not envelope.verify_signature(other_key.public_key(), b"body", signature)


@pytest.mark.parametrize(
    "signature",
    ["", "not base64!", "QUJD", "é", base64.b64encode(b"\0" * 256).decode()],
    ids=["empty", "bad-base64", "too-short", "non-ascii", "zeros"],
)
def test_verify_signature_returns_false_for_garbage(key: rsa.RSAPrivateKey, signature: str) -> None:
    assert envelope.verify_signature(key.public_key(), b"body", signature) is False


# decode rejections

DUPLICATE_TOP = dumps(document())[:-1] + b',"ack":3}'
DUPLICATE_IN_BODY = dumps(document(messages=[message()])).replace(
    b'"body": {}', b'"body": {"a": 1, "a": 2}'
)
TOO_LONG_NAME = "n" * 101

REJECTED_BODIES: dict[str, tuple[bytes, str]] = {
    "not-utf8": (b'{"protocol": "\xff"}', "not UTF-8"),
    "not-json": (b'{"protocol": 1', "not JSON"),
    "json-array": (b"[]", "envelope must be a JSON object"),
    "json-string": (b'"hello"', "envelope must be a JSON object"),
    "duplicate-key": (DUPLICATE_TOP, "repeats a key"),
    "duplicate-key-in-body": (DUPLICATE_IN_BODY, "repeats a key"),
    "missing-key": (
        dumps({k: v for k, v in document().items() if k != "nonce"}),
        "missing ['nonce']",
    ),
    "missing-optional-key": (
        dumps({k: v for k, v in document().items() if k != "hello"}),
        "missing ['hello']",
    ),
    "extra-key": (dumps(document(extra=1)), "extra ['extra']"),
    "protocol-string": (dumps(document(protocol="1")), "protocol must be an integer"),
    "protocol-bool": (dumps(document(protocol=True)), "protocol must be an integer"),
    "protocol-float": (dumps(document(protocol=1.0)), "protocol must be an integer"),
    "ack-bool": (dumps(document(ack=False)), "ack must be an integer"),
    "ack-negative": (dumps(document(ack=-1)), "ack -1 is below 0"),
    "seq-bool": (dumps(document(messages=[message(seq=True)])), "seq must be an integer"),
    "seq-negative": (dumps(document(messages=[message(seq=-1)])), "seq -1 is below 1"),
    "seq-zero": (dumps(document(messages=[message(seq=0)])), "seq 0 is below 1"),
    "unknown-type": (
        dumps(document(messages=[message(type="execution.delete")])),
        "message type 'execution.delete' is unknown",
    ),
    "unhashable-type": (dumps(document(messages=[message(type=["x"])])), "is unknown"),
    "seq-repeated": (
        dumps(document(messages=[message(seq=2), message(seq=2)])),
        "message seq 2 follows 2",
    ),
    "seq-decreasing": (
        dumps(document(messages=[message(seq=3), message(seq=2)])),
        "message seq 2 follows 3",
    ),
    "messages-not-list": (dumps(document(messages={})), "messages must be a list"),
    "message-not-object": (
        dumps(document(messages=[[1, "execution.update", {}]])),
        "message must be",
    ),
    "message-missing-key": (
        dumps(document(messages=[{"seq": 1, "type": "execution.update"}])),
        "message keys differ: missing ['body']",
    ),
    "message-extra-key": (
        dumps(document(messages=[message(id="x")])),
        "message keys differ: missing [], extra ['id']",
    ),
    "body-not-object": (dumps(document(messages=[message(body=[])])), "body must be a JSON object"),
    "sender-empty": (dumps(document(sender="")), "sender must match"),
    "sender-too-long": (dumps(document(sender=TOO_LONG_NAME)), "sender must match"),
    "sender-space": (dumps(document(sender="my edge")), "sender must match"),
    "sender-trailing-newline": (dumps(document(sender="edge\n")), "sender must match"),
    "sender-number": (dumps(document(sender=7)), "sender must match"),
    "receiver-slash": (dumps(document(receiver="../edge")), "receiver must match"),
    "key-malformed": (dumps(document(key="SHA256:abc")), "key must match"),
    "nonce-short": (dumps(document(nonce="abc")), "nonce must match"),
    "nonce-uppercase": (
        dumps(document(nonce="0123456789ABCDEF0123456789ABCDEF")),
        "nonce must match",
    ),
    "reply-to-malformed": (dumps(document(reply_to="sha256")), "reply_to must match"),
    "hello-not-object": (dumps(document(hello="hi")), "hello must be a JSON object"),
    "sent-at-string": (dumps(document(sent_at="1700000000")), "sent_at must be a finite number"),
    "sent-at-bool": (dumps(document(sent_at=True)), "sent_at must be a finite number"),
    "sent-at-overflow": (
        dumps(document()).replace(str(NOW).encode(), b"1e999"),
        "number 1e999, beyond a float",
    ),
    "nan-literal": (dumps(document()).replace(str(NOW).encode(), b"NaN"), "non-finite number NaN"),
    "infinity-literal": (
        dumps(document(messages=[message(body={"x": 1})])).replace(b'"x": 1', b'"x": -Infinity'),
        "non-finite number -Infinity",
    ),
    "too-large": (b" " * (envelope.MAX_BODY_BYTES + 1), "more than"),
}


def test_decode_accepts_the_document_the_rejection_cases_are_made_from() -> None:
    assert envelope.decode(dumps(document(messages=[message()]))).messages[0].seq == 1


@pytest.mark.parametrize(("body", "reason"), REJECTED_BODIES.values(), ids=REJECTED_BODIES.keys())
def test_decode_rejects_anything_but_the_exact_shape(body: bytes, reason: str) -> None:
    assert reason in rejection(body)


# check


def check(sent: envelope.Envelope, **changes: Any) -> None:
    arguments: dict[str, Any] = {
        "receiver": "edge-1",
        "key_fingerprint": FINGERPRINT,
        "now": NOW,
        "max_skew_s": 300.0,
    }
    envelope.check(sent, **(arguments | changes))


def test_check_accepts_an_envelope_meant_for_this_receiver_key_and_time() -> None:
    check(make_envelope())


@pytest.mark.parametrize("offset", [-300.0, 300.0])
def test_check_accepts_a_send_time_exactly_at_the_allowed_skew(offset: float) -> None:
    check(make_envelope(sent_at=NOW + offset))


def test_check_rejects_another_protocol_version() -> None:
    with pytest.raises(errors.EnvelopeRejected) as excinfo:
        check(make_envelope(protocol=envelope.PROTOCOL_VERSION + 1))
    assert "protocol 2 is not 1" in excinfo.value.reason


def test_check_rejects_an_envelope_for_another_receiver() -> None:
    with pytest.raises(errors.EnvelopeRejected) as excinfo:
        check(make_envelope(), receiver="edge-2")
    assert "receiver" in excinfo.value.reason


def test_check_rejects_a_key_other_than_the_one_that_verified_it() -> None:
    with pytest.raises(errors.EnvelopeRejected) as excinfo:
        check(make_envelope(), key_fingerprint="SHA256:" + "B" * 43)
    assert "verifying key" in excinfo.value.reason


@pytest.mark.parametrize("offset", [-300.5, 300.5], ids=["too-old", "from-the-future"])
def test_check_rejects_a_send_time_outside_the_allowed_skew(offset: float) -> None:
    with pytest.raises(errors.EnvelopeRejected) as excinfo:
        check(make_envelope(sent_at=NOW + offset))
    assert "sent_at" in excinfo.value.reason


def test_rejection_answer_does_not_carry_the_reason() -> None:
    with pytest.raises(errors.EnvelopeRejected) as excinfo:
        check(make_envelope(), receiver="edge-2")
    assert excinfo.value.message == "the envelope was rejected"
