"""The envelope parser against any input: it returns an envelope or raises EnvelopeRejected, nothing else.

Hypothesis draws bytes, JSON documents, and documents that are nearly envelopes (each field
valid or anything at all); what parses must pass the binding checks or fail them cleanly,
and must encode back to a body that parses to the same envelope.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import string
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from tests.support.envelopes import seal_as_dialer, start_message
from tether import errors
from tether.actions.context import Context
from tether.link import envelope, keys, protocol
from tether.store.sync_configs import SyncConfig

FINGERPRINT = "SHA256:" + "A" * 43
NOW = 1_700_000_000.0

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["\ud800", "\x00", "é", "SHA256:", "execution.start"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mostly_valid(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """A JSON object of valid ``fields``, up to two of them replaced by anything at all."""
    document = {key: draw(strategy) for key, strategy in fields.items()}
    for key in draw(st.sets(st.sampled_from(sorted(fields)), max_size=2)):
        document[key] = draw(json_values)
    return document


names = st.from_regex(r"[A-Za-z0-9_.-]{1,100}", fullmatch=True)
hellos = mostly_valid(
    {
        "workspace": st.text(min_size=1, max_size=30),
        "role": st.sampled_from(["controlling", "controlled"]),
        "protocols": st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=3),
        "poll_s": st.floats(min_value=0, max_value=60),
    }
)
message_documents = mostly_valid(
    {
        "seq": st.integers(min_value=1, max_value=10),
        "type": st.sampled_from(sorted(envelope.MESSAGE_TYPES)),
        "body": st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    }
)
envelope_documents = mostly_valid(
    {
        "protocol": st.just(envelope.PROTOCOL_VERSION),
        "sender": names,
        "receiver": st.just("edge") | names,
        "key": st.just(FINGERPRINT),
        "nonce": st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        "sent_at": st.floats(min_value=NOW - 600, max_value=NOW + 600),
        "ack": st.integers(min_value=0, max_value=2**64),
        "messages": st.lists(message_documents, max_size=3),
        "reply_to": st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
        "hello": st.none() | hellos,
    }
)


@st.composite
def nearly_envelopes(draw: st.DrawFn) -> bytes:
    """An envelope-shaped JSON body, some fields dropped, extra or repeated."""
    document: dict[str, Any] = draw(envelope_documents)
    pairs = list(document.items())
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    if pairs and draw(st.integers(0, 4)) == 0:
        del pairs[draw(st.integers(0, len(pairs) - 1))]
    if pairs and draw(st.integers(0, 4)) == 0:
        key = draw(st.sampled_from([k for k, _ in pairs]))
        pairs.append((key, draw(json_values)))
    if draw(st.integers(0, 4)) == 0:
        pairs.append((draw(st.text(max_size=8)), draw(json_values)))
    members = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs)
    return ("{" + members + "}").encode("utf-8", "surrogatepass")


def listener_config() -> SyncConfig:
    """A controlled sync config 'edge', as the parsed envelopes' hello is compared with."""
    return SyncConfig(
        name="edge",
        is_enabled=True,
        remote_url=None,
        role="controlled",
        ca_certificate=None,
        verify_ssl=True,
        own_private_key=None,
        next_own_private_key=None,
        remote_public_keys=[],
        send_all_executions=False,
        sync_interval_s=None,
        accepted_scripts=None,
        run_as=None,
        allow_onward_remote=False,
        max_running=None,
        proxy_url=None,
        created_at=NOW,
        updated_at=NOW,
    )


def assert_parses_or_rejects(body: bytes) -> None:
    """decode, check and hello_problem end in an envelope or EnvelopeRejected, never a crash."""
    try:
        opened = envelope.decode(body)
    except errors.EnvelopeRejected:
        return
    # What parses is whole: it encodes again, and that body parses to the same envelope.
    assert envelope.decode(envelope.encode(opened)) == opened
    problem = protocol.hello_problem(listener_config(), opened.hello)
    assert problem is None or isinstance(problem, str)
    try:
        envelope.check(
            opened, receiver="edge", key_fingerprint=FINGERPRINT, now=NOW, max_skew_s=300
        )
    except errors.EnvelopeRejected:
        return


@given(st.binary(max_size=2000))
def test_any_bytes_parse_or_are_rejected(body: bytes) -> None:
    assert_parses_or_rejects(body)


@given(json_values)
def test_any_json_document_parses_or_is_rejected(value: Any) -> None:
    assert_parses_or_rejects(json.dumps(value).encode("utf-8", "surrogatepass"))


@given(nearly_envelopes())
def test_nearly_envelopes_parse_or_are_rejected(body: bytes) -> None:
    assert_parses_or_rejects(body)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"9" * 5000,
        b'{"protocol": 1' + b" " * 100_000 + b"}",
        b"\xef\xbb\xbf{}",
        b"\x00",
        b"",
    ],
    ids=["deep list", "deep object", "5000 digits", "long whitespace", "BOM", "NUL", "empty"],
)
def test_pathological_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(errors.EnvelopeRejected):
        envelope.decode(body)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("sent_at", "1e400"),
        ("body", '{"input_value": 1e400}'),
        ("body", '{"input_value": -1e400}'),
        ("body", '{"script": "\\ud800"}'),
        ("body", '{"\\udfff": 1}'),
    ],
    ids=[
        "overflowing sent_at",
        "infinite input",
        "minus infinite input",
        "lone surrogate",
        "surrogate key",
    ],
)
def test_numbers_beyond_float_and_lone_surrogates_are_rejected(where: str, value: str) -> None:
    """JSON may spell infinity as 1e400 and half a character as \\ud800; neither is an envelope's."""
    valid = envelope.Envelope(
        protocol=1,
        sender="hq",
        receiver="edge",
        key=FINGERPRINT,
        nonce="0" * 32,
        sent_at=NOW,
        ack=0,
        messages=(envelope.Message(1, "execution.start", {"script": "x"}),),
    )
    body = envelope.encode(valid).decode()
    if where == "sent_at":
        body = body.replace(f'"sent_at":{NOW}', f'"sent_at":{value}')
    else:
        body = body.replace('{"script":"x"}', value)
    assert value in body
    with pytest.raises(errors.EnvelopeRejected):
        envelope.decode(body.encode())


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return keys.generate_private_key(2048)


def test_any_signature_text_verifies_or_is_false(key: rsa.RSAPrivateKey) -> None:
    """verify_signature answers a bool for any text, and True only for the exact signature."""
    body = b'{"some":"body"}'
    signature = envelope.sign(key, body)

    @given(st.text(alphabet=string.printable + "é", max_size=400) | st.just(signature))
    def check(text: str) -> None:
        is_valid = envelope.verify_signature(key.public_key(), body, text)
        assert is_valid is (text == signature)

    check()


def test_signature_text_is_canonical_base64(key: rsa.RSAPrivateKey) -> None:
    """Other spellings of the same signature bytes (unused bits set, no padding) are refused."""
    body = b'{"some":"body"}'
    signature = envelope.sign(key, body)
    raw = base64.b64decode(signature)
    assert signature.endswith("==")  # 256 bytes: the last character carries 4 unused bits
    last = signature[-3]
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    sibling = alphabet[alphabet.index(last) ^ 0x01]
    respelled = signature[:-3] + sibling + "=="
    assert base64.b64decode(respelled) == raw
    for text in (respelled, signature[:-2], signature + "\n", " " + signature):
        assert not envelope.verify_signature(key.public_key(), body, text), text
    assert envelope.verify_signature(key.public_key(), body, signature)


def test_a_sealed_envelope_opens_only_unchanged(key: rsa.RSAPrivateKey) -> None:
    """protocol.open_ over any flipped byte of a sealed body: EnvelopeRejected, never a crash."""
    sealed = seal_as_dialer(key, start_message())
    ctx = Context(db=None, events=None, workspace_name="edge", clock=time.time)  # type: ignore[arg-type]
    config = dataclasses.replace(listener_config(), remote_public_keys=[keys.public_pem(key)])
    ring = protocol.KeyRing(ctx)

    def open_(body: bytes, headers: dict[str, str]) -> envelope.Envelope:
        return protocol.open_(ctx, ring, config, body, headers, receiver="edge", max_skew_s=300)

    assert open_(sealed.body, sealed.headers).messages[0].type == "execution.start"

    @given(st.integers(0, len(sealed.body) - 1), st.integers(1, 255))
    def check(index: int, mask: int) -> None:
        body = bytearray(sealed.body)
        body[index] ^= mask
        with pytest.raises(errors.EnvelopeRejected):
            open_(bytes(body), sealed.headers)

    check()


GOOD_HELLO = {"workspace": "hq", "role": "controlling", "protocols": [1], "poll_s": 25}


@pytest.mark.parametrize(
    "hello",
    [
        {**GOOD_HELLO, "role": ["controlling"]},
        {**GOOD_HELLO, "role": "observer"},
        {**GOOD_HELLO, "workspace": "w" * 201},
        {**GOOD_HELLO, "workspace": ""},
        {**GOOD_HELLO, "workspace": {"name": "hq"}},
        {**GOOD_HELLO, "protocols": 1},
        {**GOOD_HELLO, "protocols": [[1]]},
        {**GOOD_HELLO, "protocols": ["1"]},
        {**GOOD_HELLO, "protocols": [True]},
        {**GOOD_HELLO, "protocols": []},
        {**GOOD_HELLO, "protocols": list(range(1, 100))},
        {**GOOD_HELLO, "poll_s": "25"},
        {**GOOD_HELLO, "poll_s": [25]},
        {**GOOD_HELLO, "poll_s": -1},
        {**GOOD_HELLO, "extra": 1},
        {k: v for k, v in GOOD_HELLO.items() if k != "role"},
    ],
    ids=lambda hello: json.dumps(hello)[:60],
)
def test_a_hello_of_another_shape_is_rejected(hello: dict[str, Any]) -> None:
    """The listener stores and compares what the hello says: only its exact shape parses."""
    opened = envelope.Envelope(
        protocol=1,
        sender="hq",
        receiver="edge",
        key=FINGERPRINT,
        nonce="0" * 32,
        sent_at=NOW,
        ack=0,
        messages=(),
        hello=hello,
    )
    with pytest.raises(errors.EnvelopeRejected):
        envelope.decode(envelope.encode(opened))
    good = dataclasses.replace(opened, hello=GOOD_HELLO)
    assert envelope.decode(envelope.encode(good)) == good
