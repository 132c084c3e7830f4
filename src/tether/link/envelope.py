"""The signed envelope of the link protocol: its shape, bytes, signature and checks.

Pure code: it neither stores nonces nor knows sync configs; callers bring both.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import math
import re
import secrets
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tether import errors
from tether.messages import Message as Message  # the envelope carries it; re-exported
from tether.messages import dump

PROTOCOL_VERSION = 1
SIGNATURE_HEADER = "X-Tether-Signature"
KEY_HEADER = "X-Tether-Key"
MAX_BODY_BYTES = 4 * 1024 * 1024
MESSAGE_TYPES = frozenset(
    {"execution.start", "execution.update", "execution.cancel", "execution.mirror"}
)

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
_NONCE = re.compile(r"[0-9a-f]{32}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_ENVELOPE_KEYS = frozenset(
    {"protocol", "sender", "receiver", "key", "nonce", "sent_at", "ack", "messages"}
    | {"reply_to", "hello"}
)
_MESSAGE_KEYS = frozenset({"seq", "type", "body"})
_HELLO_KEYS = frozenset({"workspace", "role", "protocols"})
# poll_s: how long a listener may hold a request; resend: up to which sequence the dialer
# wants the unacked messages again, 0 for none (protocol 2, see link/protocol.py)
_HELLO_OPTIONAL_KEYS = frozenset({"poll_s", "resend"})
_ROLES = frozenset({"controlling", "controlled"})
_MAX_WORKSPACE_CHARS = 200
_MAX_PROTOCOLS = 16
_MAX_INTEGER = 2**63 - 1  # sequence numbers and versions fit the store's 64-bit columns


@dataclasses.dataclass(frozen=True)
class Envelope:
    """What one side sends the other in one request or response."""

    protocol: int
    sender: str
    receiver: str
    key: str
    nonce: str
    sent_at: float
    ack: int
    messages: tuple[Message, ...]
    reply_to: str | None = None
    hello: dict[str, Any] | None = None


def new_nonce() -> str:
    """A fresh random nonce: 16 bytes as hex."""
    return secrets.token_hex(16)


def body_digest(body: bytes) -> str:
    """The hex SHA-256 of a body, as a response's ``reply_to`` names its request."""
    return hashlib.sha256(body).hexdigest()


def encode(envelope: Envelope) -> bytes:
    """The envelope as compact UTF-8 JSON, every field present, in declaration order."""
    # Built by hand: dataclasses.asdict deep-copies every message body on the way, and each
    # body is spliced in as the JSON text the outbox holds (Message.body_json), not parsed
    # and dumped again. The bytes are those of json.dumps over the whole document.
    head = dump(
        {
            "protocol": envelope.protocol,
            "sender": envelope.sender,
            "receiver": envelope.receiver,
            "key": envelope.key,
            "nonce": envelope.nonce,
            "sent_at": envelope.sent_at,
            "ack": envelope.ack,
        }
    )
    tail = dump({"reply_to": envelope.reply_to, "hello": envelope.hello})
    messages = ",".join(
        f'{{"seq":{dump(m.seq)},"type":{dump(m.type)},"body":{m.body_json}}}'
        for m in envelope.messages
    )
    text = f'{head[:-1]},"messages":[{messages}],{tail[1:]}'
    return text.encode("utf-8")


def sign(private_key: rsa.RSAPrivateKey, body: bytes) -> str:
    """The base64 RSA-PSS (SHA-256, MGF1-SHA256, 32-byte salt) signature of ``body``."""
    return base64.b64encode(private_key.sign(body, _PSS, hashes.SHA256())).decode("ascii")


def verify_signature(public_key: rsa.RSAPublicKey, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is ``public_key``'s signature of ``body``; garbage is just False."""
    try:
        raw = base64.b64decode(signature, validate=True)
        # One spelling per signature: no set unused bits, nothing a relay could vary unnoticed.
        if base64.b64encode(raw).decode("ascii") != signature:
            return False
        public_key.verify(raw, body, _PSS, hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def decode(body: bytes) -> Envelope:
    """Parse a body, whose signature the caller has verified, into an envelope of exact shape.

    Raises:
        errors.EnvelopeRejected: anything but exactly the shape ``encode`` writes.
    """
    document = _parse_object(body)
    _require_keys(document, _ENVELOPE_KEYS, "envelope")
    return Envelope(
        protocol=_integer(document, "protocol", minimum=0),
        sender=_matching(document, "sender", _NAME),
        receiver=_matching(document, "receiver", _NAME),
        key=_matching(document, "key", _FINGERPRINT),
        nonce=_matching(document, "nonce", _NONCE),
        sent_at=_finite_number(document, "sent_at"),
        ack=_integer(document, "ack", minimum=0),
        messages=_messages(document["messages"]),
        reply_to=None if document["reply_to"] is None else _matching(document, "reply_to", _DIGEST),
        hello=None if document["hello"] is None else _hello(document["hello"]),
    )


def check(
    envelope: Envelope, *, receiver: str, key_fingerprint: str, now: float, max_skew_s: float
) -> None:
    """Reject an envelope of another protocol, receiver, key, or time.

    Raises:
        errors.EnvelopeRejected: the reason names the first binding that does not hold.
    """
    if envelope.protocol != PROTOCOL_VERSION:
        _reject(f"protocol {envelope.protocol} is not {PROTOCOL_VERSION}")
    if envelope.receiver != receiver:
        _reject(f"receiver {envelope.receiver!r} is not {receiver!r}")
    if envelope.key != key_fingerprint:
        _reject(f"key {envelope.key!r} is not the verifying key {key_fingerprint!r}")
    if abs(now - envelope.sent_at) > max_skew_s:
        _reject(f"sent_at {envelope.sent_at} is more than {max_skew_s}s from now ({now})")


def _parse_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object with no duplicate keys and no NaN or Infinity."""
    if len(body) > MAX_BODY_BYTES:
        _reject(f"body has {len(body)} bytes, more than {MAX_BODY_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.EnvelopeRejected(reason="body is not UTF-8") from exc
    try:
        document = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except (ValueError, RecursionError) as exc:
        raise errors.EnvelopeRejected(reason=f"body is not JSON: {exc}") from exc
    _refuse_lone_surrogates(document)
    return _object(document, "envelope")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's dict, refusing a key that appears twice."""
    document = dict(pairs)
    if len(document) != len(pairs):
        _reject("a JSON object repeats a key")
    return document


def _no_constant(name: str) -> NoReturn:
    """Refuse JSON's non-standard NaN, Infinity and -Infinity."""
    _reject(f"body holds the non-finite number {name}")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refusing those beyond a float (1e400)."""
    value = float(text)
    if not math.isfinite(value):
        _reject(f"body holds the number {text[:20]}, beyond a float")
    return value


def _refuse_lone_surrogates(document: Any) -> None:
    """Refuse strings holding half a UTF-16 pair (\\ud800): they are no text, and no store takes them."""
    pending = [document]
    while pending:
        value = pending.pop()
        if type(value) is dict:
            pending.extend(value.keys())
            pending.extend(value.values())
        elif type(value) is list:
            pending.extend(value)
        elif type(value) is str and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                _reject("body holds a lone UTF-16 surrogate")


def _hello(value: Any) -> dict[str, Any]:
    """A first-contact statement of exact shape: workspace, role, protocols, hold time and
    whether the dialer asks for everything unacked again."""
    hello = _object(value, "hello")
    _require_keys(hello, _HELLO_KEYS | (_HELLO_OPTIONAL_KEYS & hello.keys()), "hello")
    workspace = hello["workspace"]
    if type(workspace) is not str or not 0 < len(workspace) <= _MAX_WORKSPACE_CHARS:
        _reject(f"hello.workspace must be text of 1 to {_MAX_WORKSPACE_CHARS} characters")
    if type(hello["role"]) is not str or hello["role"] not in _ROLES:
        _reject(f"hello.role must be one of {sorted(_ROLES)}")
    protocols = hello["protocols"]
    if (
        type(protocols) is not list
        or not 0 < len(protocols) <= _MAX_PROTOCOLS
        or not all(type(v) is int and 1 <= v <= _MAX_INTEGER for v in protocols)
    ):
        _reject(f"hello.protocols must be a list of 1 to {_MAX_PROTOCOLS} version numbers")
    if "poll_s" in hello and _finite_number(hello, "poll_s") < 0:
        _reject("hello.poll_s must not be negative")
    if "resend" in hello:
        _integer(hello, "resend", minimum=0)
    return hello


def _messages(value: Any) -> tuple[Message, ...]:
    """The messages, each of exact shape, in strictly increasing seq order."""
    if type(value) is not list:
        _reject("messages must be a list")
    messages = tuple(_message(item) for item in value)
    for earlier, later in itertools.pairwise(messages):
        if later.seq <= earlier.seq:
            _reject(f"message seq {later.seq} follows {earlier.seq}")
    return messages


def _message(value: Any) -> Message:
    """One message of exact shape; seq starts at 1, as outboxes number from 1."""
    item = _object(value, "message")
    _require_keys(item, _MESSAGE_KEYS, "message")
    kind = item["type"]
    if type(kind) is not str or kind not in MESSAGE_TYPES:
        _reject(f"message type {kind!r} is unknown")
    return Message(
        seq=_integer(item, "seq", minimum=1), type=kind, body=_object(item["body"], "body")
    )


def _require_keys(document: dict[str, Any], expected: frozenset[str], where: str) -> None:
    """Refuse a missing or an extra key."""
    if document.keys() != expected:
        missing = sorted(expected - document.keys())
        extra = sorted(document.keys() - expected)
        _reject(f"{where} keys differ: missing {missing}, extra {extra}")


def _object(value: Any, where: str) -> dict[str, Any]:
    """``value`` if it is a JSON object."""
    if type(value) is not dict:
        _reject(f"{where} must be a JSON object")
    return value


def _integer(document: dict[str, Any], key: str, *, minimum: int) -> int:
    """An integer field (never a bool) from ``minimum`` to a 64-bit column's largest."""
    value = document[key]
    if type(value) is not int:
        _reject(f"{key} must be an integer")
    if value < minimum:
        _reject(f"{key} {value} is below {minimum}")
    if value > _MAX_INTEGER:
        _reject(f"{key} {value} is above {_MAX_INTEGER}")
    return value


def _finite_number(document: dict[str, Any], key: str) -> float:
    """A finite number field (never a bool)."""
    value = document[key]
    if type(value) not in (int, float) or not math.isfinite(value):
        _reject(f"{key} must be a finite number")
    return float(value)


def _matching(document: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    """A string field that matches ``pattern`` in full."""
    value = document[key]
    if type(value) is not str or not pattern.fullmatch(value):
        _reject(f"{key} must match {pattern.pattern}")
    return value


def _reject(reason: str) -> NoReturn:
    """Raise EnvelopeRejected; the reason is for the log, never the answer."""
    raise errors.EnvelopeRejected(reason=reason)
