"""The listener side of a link: verify a request before parsing it, apply it, answer it.

Unknown, disabled and badly signed requests get the same 401, so names cannot be probed.
"""

from __future__ import annotations

import asyncio
import logging

from tether import errors
from tether.actions import events, incoming
from tether.actions.context import Context
from tether.link import envelope, exchange, protocol
from tether.link.protocol import KeyRing, Sealed
from tether.store.sync_configs import SyncConfig

log = logging.getLogger(__name__)


class Listener:
    """Answers POST /sync_config/{name}/sync."""

    def __init__(
        self, ctx: Context, ring: KeyRing, *, max_poll_s: float, max_skew_s: float
    ) -> None:
        self._ctx = ctx
        self._ring = ring
        self._max_poll_s = max_poll_s
        self._max_skew_s = max_skew_s

    async def handle(self, name: str, body: bytes, headers: dict[str, str]) -> Sealed:
        """The signed answer to one request.

        Raises:
            errors.EnvelopeRejected: anything that does not verify; no state was touched.
        """
        config, _state = await asyncio.to_thread(exchange.load, self._ctx, name)
        if config is None or not config.is_enabled:
            raise errors.EnvelopeRejected(f"sync config {name!r} is unknown or disabled")
        request = await asyncio.to_thread(
            protocol.open_,
            self._ctx,
            self._ring,
            config,
            body,
            headers,
            receiver=name,
            max_skew_s=self._max_skew_s,
        )
        reply_to = envelope.body_digest(body)
        key_problem = await asyncio.to_thread(self._key_problem, config)
        if key_problem is not None:
            # An answer cannot go unsigned: say why in the status, and apply nothing.
            await asyncio.to_thread(exchange.record_failure, self._ctx, name, key_problem)
            raise errors.EnvelopeRejected(key_problem)
        problem = protocol.hello_problem(config, request.hello)
        if problem is not None:
            await asyncio.to_thread(exchange.record_failure, self._ctx, name, problem)
            return await asyncio.to_thread(self._answer, name, request.sender, reply_to, False)
        inbound = [incoming.Inbound(m.seq, m.type, m.body) for m in request.messages]
        try:
            await asyncio.to_thread(
                incoming.apply_envelope, self._ctx, config, inbound, request.ack, request.nonce
            )
        except incoming.Replay as exc:
            raise errors.EnvelopeRejected("nonce seen before (replay)") from exc
        await asyncio.to_thread(exchange.record_success, self._ctx, name, request.hello)
        poll_s = min(float((request.hello or {}).get("poll_s") or 0), self._max_poll_s)
        if poll_s > 0:
            await self._hold(name, poll_s)
        return await asyncio.to_thread(self._answer, name, request.sender, reply_to, True)

    def _key_problem(self, config: SyncConfig) -> str | None:
        """Words for why this side cannot sign its answer, or None."""
        try:
            self._ring.own(config)
        except errors.InvalidInput as exc:
            return exc.message
        return None

    async def _hold(self, name: str, poll_s: float) -> None:
        """Keep a long-poll open until this side has something to deliver, or ``poll_s`` passed."""
        with self._ctx.events.watch(events.OUTBOX, [name]) as watch:
            if not await asyncio.to_thread(exchange.has_pending, self._ctx, name):
                await watch.wait(poll_s)

    def _answer(self, name: str, receiver: str, reply_to: str, is_delivering: bool) -> Sealed:
        config, state, batch = exchange.next_batch(self._ctx, name)
        return protocol.seal(
            self._ctx,
            self._ring,
            config,
            receiver=receiver,
            ack=state.applied_seq,
            messages=batch if is_delivering else [],
            reply_to=reply_to,
            hello_=protocol.hello(self._ctx, config),
        )
