"""Sealing and opening envelopes for one sync config: keys, names, times, hello and ack.

Shared by the dialer and the listener endpoint; knows nothing of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from tether import errors
from tether.actions.context import Context
from tether.link import configs, envelope, keys
from tether.link.envelope import Envelope, Message
from tether.store.sync_configs import SyncConfig

# Protocol 2 is protocol 1 (the envelope's version) whose dialer may say in its hello which
# unacked messages it wants again ("resend": up to which sequence, 0 for none); a listener
# of protocol 2 then delivers each message once rather than with every answer. A dialer sends "resend" only
# to a listener that lists 2: one of protocol 1 refuses a hello with keys it does not know.
RESEND_PROTOCOL = 2
SUPPORTED_PROTOCOLS = [envelope.PROTOCOL_VERSION, RESEND_PROTOCOL]


@dataclass(frozen=True)
class Sealed:
    body: bytes
    headers: dict[str, str]


class KeyRing:
    """Decrypted keys per sync config, reloaded when the config changes."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._cache: dict[
            str, tuple[float, rsa.RSAPrivateKey | None, dict[str, rsa.RSAPublicKey]]
        ] = {}

    def _entry(
        self, config: SyncConfig
    ) -> tuple[float, rsa.RSAPrivateKey | None, dict[str, rsa.RSAPublicKey]]:
        cached = self._cache.get(config.name)
        if cached is None or cached[0] != config.updated_at:
            cached = (
                config.updated_at,
                configs.own_private_key(self._ctx, config),
                configs.remote_keys(config),
            )
            self._cache[config.name] = cached
        return cached

    def own(self, config: SyncConfig) -> rsa.RSAPrivateKey:
        key = self._entry(config)[1]
        if key is None:
            raise errors.LinkConfigInvalid(
                field="own_private_key",
                detail=f"sync config '{config.name}' has no private key to sign with: set one (tether keygen makes one)",
            )
        return key

    def remote(self, config: SyncConfig, fingerprint: str) -> rsa.RSAPublicKey | None:
        return self._entry(config)[2].get(fingerprint)


def hello(
    ctx: Context, config: SyncConfig, poll_s: float = 0.0, resend: int | None = None
) -> dict[str, Any]:
    """What this side states in every envelope: workspace, role, protocols, how long to hold,
    and (a dialer speaking to a listener of protocol 2) up to which message to deliver the
    unacked ones again (0: none)."""
    stated: dict[str, Any] = {
        "workspace": ctx.workspace_name,
        "role": config.role,
        "protocols": SUPPORTED_PROTOCOLS,
        "poll_s": poll_s,
    }
    if resend is not None:
        stated["resend"] = resend
    return stated


def speaks_resend(their_hello: dict[str, Any] | None) -> bool:
    """Whether the other side's hello lists protocol 2 (it understands hello.resend)."""
    return RESEND_PROTOCOL in ((their_hello or {}).get("protocols") or ())


def hello_problem(config: SyncConfig, their_hello: dict[str, Any] | None) -> str | None:
    """Words for a first-contact mismatch (same roles, no common protocol), or None."""
    if not their_hello:
        return "the other side sent no hello: it runs an incompatible version of tether; upgrade it"
    workspace = their_hello.get("workspace", "?")
    if their_hello.get("role") == config.role:
        return (
            f"both sides of this link have role '{config.role}' (the other side is workspace '{workspace}'): "
            "exactly one side must be 'controlling' (it starts executions) and the other 'controlled'; "
            "change the role on one side"
        )
    theirs = their_hello.get("protocols") or []
    if not set(theirs) & set(SUPPORTED_PROTOCOLS):
        return (
            f"no common protocol version: this side speaks {SUPPORTED_PROTOCOLS}, workspace '{workspace}' "
            f"speaks {theirs}; upgrade the older side"
        )
    return None


def seal(
    ctx: Context,
    ring: KeyRing,
    config: SyncConfig,
    *,
    receiver: str,
    ack: int,
    messages: list[Message],
    reply_to: str | None = None,
    hello_: dict[str, Any] | None = None,
) -> Sealed:
    """A signed envelope from ``config`` to ``receiver``."""
    private = ring.own(config)
    fingerprint = keys.fingerprint(private.public_key())
    sealed = Envelope(
        protocol=envelope.PROTOCOL_VERSION,
        sender=config.name,
        receiver=receiver,
        key=fingerprint,
        nonce=envelope.new_nonce(),
        sent_at=ctx.now(),
        ack=ack,
        messages=tuple(messages),
        reply_to=reply_to,
        hello=hello_,
    )
    body = envelope.encode(sealed)
    headers = {
        envelope.SIGNATURE_HEADER: envelope.sign(private, body),
        envelope.KEY_HEADER: fingerprint,
        "Content-Type": "application/json",
    }
    return Sealed(body, headers)


def open_(
    ctx: Context,
    ring: KeyRing,
    config: SyncConfig,
    body: bytes,
    headers: dict[str, str],
    *,
    receiver: str,
    max_skew_s: float,
) -> Envelope:
    """Verify ``body``'s signature with one of the other side's keys, then parse and check it.

    Raises:
        errors.EnvelopeRejected: a bad or missing signature, unknown key, wrong receiver, stale time.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(envelope.SIGNATURE_HEADER.lower())
    fingerprint = lowered.get(envelope.KEY_HEADER.lower(), "")
    if not signature:
        raise errors.EnvelopeRejected("no signature")
    if len(body) > envelope.MAX_BODY_BYTES:
        raise errors.EnvelopeRejected("body too large")
    public = ring.remote(config, fingerprint)
    if public is None:
        raise errors.EnvelopeRejected(f"unknown key {fingerprint!r}")
    if not envelope.verify_signature(public, body, signature):
        raise errors.EnvelopeRejected("bad signature")
    opened = envelope.decode(body)
    envelope.check(
        opened, receiver=receiver, key_fingerprint=fingerprint, now=ctx.now(), max_skew_s=max_skew_s
    )
    return opened
