"""The listener side of a link: verify a request before parsing it, apply it, answer it.

Unknown, disabled and badly signed requests get the same 401, so names cannot be probed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from dataclasses import dataclass
from typing import Any

from tether import errors
from tether.actions import events, incoming
from tether.actions.context import Context
from tether.link import configs, envelope, exchange, protocol
from tether.link.envelope import Envelope, Message
from tether.link.protocol import KeyRing, Sealed
from tether.statuses import Event
from tether.store.sync_configs import SyncConfig

log = logging.getLogger(__name__)
HOLD_JITTER = 0.8  # a long-poll is held for 80-100 % of its asked-for time
_JITTER = random.Random()  # never the global generator (see link/dialer.py)
# A dialer holds one poll at a time; a few more are polls whose connections died unnoticed
# (cut by a proxy). Past this many on one link the oldest is answered at once, so that a
# peer cannot pile up held requests, each an open connection and a task here.
MAX_HELD_POLLS = 4


@dataclass(frozen=True)
class Received:
    """What the answer to an applied request needs to know."""

    config: SyncConfig
    sender: str
    poll_s: float
    is_delivering: bool
    applied: int = 0  # the inbox cursor once the request was applied
    has_pending: bool | None = None  # whether this side's outbox held messages then
    resend: int | None = None  # the dialer's hello.resend; None: it speaks protocol 1


class Listener:
    """Answers POST /sync_config/{name}/sync."""

    def __init__(
        self,
        ctx: Context,
        ring: KeyRing,
        health: exchange.Health,
        *,
        max_poll_s: float,
        max_skew_s: float,
    ) -> None:
        self._ctx = ctx
        self._configs = exchange.ConfigCache(ctx)
        self._ring = ring
        self._health = health
        self._deliveries = exchange.Deliveries(ctx)
        self._max_poll_s = max_poll_s
        self._max_skew_s = max_skew_s
        self._held: dict[str, collections.deque[events.Watch]] = {}  # on the loop only

    async def handle(self, name: str, body: bytes, headers: dict[str, str]) -> Sealed:
        """The signed answer to one request.

        Raises:
            errors.EnvelopeRejected: anything that does not verify; no state was touched.
        """
        digest = envelope.body_digest(body)
        # Armed before the store is read, so that nothing committed meanwhile goes unnoticed.
        with self._ctx.events.watch(Event.OUTBOX, [name]) as watch:
            received, answer = await asyncio.to_thread(
                self._receive_or_answer, name, body, headers, digest
            )
            if answer is not None:
                return answer
            # Jitter spreads the renewals of many links, which would otherwise come in step.
            hold_s = received.poll_s * _JITTER.uniform(HOLD_JITTER, 1.0)
            is_woken = await self._hold(name, watch, hold_s)
        # Looked up again: the config may have changed during the hold. A hold that ran out
        # unwoken has nothing to deliver (every message written announces itself), so its
        # answer needs no store: the outbox was empty when the hold began.
        return await asyncio.to_thread(self._answer, received, digest, is_quiet=not is_woken)

    async def _hold(self, name: str, watch: events.Watch, hold_s: float) -> bool:
        """Hold one poll of link ``name`` until woken or ``hold_s`` passed; True when woken."""
        held = self._held.setdefault(name, collections.deque())
        if len(held) >= MAX_HELD_POLLS:
            held.popleft().wake()  # the oldest: most likely a connection that died unnoticed
        held.append(watch)
        try:
            return await watch.wait(hold_s)
        finally:
            if watch in held:
                held.remove(watch)
            if not held:
                self._held.pop(name, None)

    def _receive_or_answer(
        self, name: str, body: bytes, headers: dict[str, str], digest: str
    ) -> tuple[Received, Sealed | None]:
        """Apply one request, and answer it at once unless it is a long-poll with nothing to
        deliver yet (then the answer is None); blocking, in one worker thread."""
        received = self._receive(name, body, headers)
        if received.poll_s > 0 and received.is_delivering and not received.has_pending:
            return received, None
        return received, self._answer(received, digest, config=received.config)

    def _receive(self, name: str, body: bytes, headers: dict[str, str]) -> Received:
        """Verify, then apply one request."""
        if not configs.is_name(name):
            raise errors.EnvelopeRejected(f"{name[:120]!r} is no sync config's name")
        config = self._configs.find(name)
        if config is None or not config.is_enabled:
            raise errors.EnvelopeRejected(f"sync config {name!r} is unknown or disabled")
        if config.is_dialer:
            # This side opens the link's connections: a request can only be a reflection.
            raise errors.EnvelopeRejected(f"sync config {name!r} dials; it takes no requests")
        request = protocol.open_(
            self._ctx,
            self._ring,
            config,
            body,
            headers,
            receiver=name,
            max_skew_s=self._max_skew_s,
        )
        if request.reply_to is not None:
            raise errors.EnvelopeRejected("an answer was posted as a request (reply_to is set)")
        key_problem = self._key_problem(config)
        if key_problem is not None:
            # An answer cannot go unsigned: say why in the status, and apply nothing.
            self._health.failure(name, key_problem)
            raise errors.EnvelopeRejected(key_problem)
        problem = protocol.hello_problem(config, request.hello)
        if problem is not None:
            # A mismatched request applies nothing, but its nonce is spent all the same:
            # replayed after the link was mended, it must not put the link back in failing.
            self._apply(config, request, [], ack=0, health=None, poll_s=0.0)
            self._health.failure(name, problem)
            return Received(config, request.sender, 0.0, is_delivering=False)
        inbound = list(request.messages)
        health = self._health.success_values(config, request.hello)
        hello = request.hello or {}
        poll_s = min(float(hello.get("poll_s") or 0), self._max_poll_s)
        resend = hello.get("resend")
        applied = self._apply(
            config,
            request,
            inbound,
            ack=request.ack,
            health=health,
            poll_s=poll_s,
            pending_after=self._deliveries.floor(config, resend),
        )
        if health is not None:
            self._health.recorded(config)
        self._health.counted(name, len(inbound), applied.repeats)
        return Received(
            config,
            request.sender,
            poll_s,
            is_delivering=True,
            applied=applied.cursor,
            has_pending=applied.has_pending,
            resend=resend,
        )

    def _apply(
        self,
        config: SyncConfig,
        request: Envelope,
        inbound: list[Message],
        *,
        ack: int,
        health: dict[str, Any] | None,
        poll_s: float,
        pending_after: int = 0,
    ) -> incoming.Applied:
        """Apply a verified request's messages and ack, spending its nonce; blocking."""
        try:
            return incoming.apply_envelope(
                self._ctx,
                config,
                inbound,
                ack,
                request.nonce,
                health,
                is_pending_asked=poll_s > 0,  # a long-poll is held only while nothing waits
                pending_after=pending_after,  # what earlier answers carry is not waiting
                sender=request.sender,
            )
        except incoming.Replay as exc:
            raise errors.EnvelopeRejected("nonce seen before (replay)") from exc
        except incoming.WrongSender as exc:
            raise errors.EnvelopeRejected(str(exc)) from exc

    def _key_problem(self, config: SyncConfig) -> str | None:
        """Words for why this side cannot sign its answer, or None."""
        try:
            self._ring.own(config)
        except errors.InvalidInput as exc:
            return exc.message
        return None

    def _answer(
        self,
        received: Received,
        reply_to: str,
        *,
        config: SyncConfig | None = None,
        is_quiet: bool = False,
    ) -> Sealed:
        name = received.config.name
        config = config or self._configs.find(name)
        if config is None:
            raise errors.SyncConfigNotFound(name=name)  # deleted during the hold
        batch: list[Message] = []
        if is_quiet:
            # The cursor may have moved since (a concurrent request applied more): an older
            # ack only delays the other side's clean-up, which never moves back.
            ack = received.applied
        else:
            state, batch = self._deliveries.batch(config, received.resend)
            ack = state.applied_seq
        return protocol.seal(
            self._ctx,
            self._ring,
            config,
            receiver=received.sender,
            ack=ack,
            messages=batch if received.is_delivering else [],
            reply_to=reply_to,
            hello_=protocol.hello(self._ctx, config),
        )
