"""The dialing side of one link: exchanges envelopes with the listener over HTTP(S).

Long-polls when no interval is set (and sends new messages at once in a second request);
otherwise exchanges every N seconds. Failures back off with jitter and never block others.

The client is aiohttp's: measured on the development machine, an httpx AsyncClient request
cost about 2.5 ms of CPU, an aiohttp one about 0.3 ms, and a link makes one or two requests
per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from tether import aio, errors
from tether.actions import incoming
from tether.actions.context import Context
from tether.link import compression, configs, envelope, exchange, protocol
from tether.link.protocol import KeyRing
from tether.messages import Message
from tether.statuses import Event
from tether.store.sync_configs import LinkState, SyncConfig

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0
CONNECT_TIMEOUT_S = 10.0
FIRST_HOLD_MIN = 0.05  # the first hold after a connect: 5-100 % of the long-poll time
# After an answer that delivered messages, the poll is renewed when this side writes a
# message (its answer to them, usually within milliseconds), or after this long at most.
LINGER_S = 0.05
EXTRA_READ_S = 10.0  # beyond the long-poll hold, before a silent listener counts as down
# Requests that carry this side's new messages at once, beside the held poll. Every answer
# carries all the other side's unacked messages, so each request more in flight delivers
# them once more: with two, a burst of 2,000 remote executions (the controlled side
# dialing) took 0.46 requests and 2.3 deliveries of each start per execution; with one,
# 0.23 and 1.45, and about 10 % more executions per second. It sends until nothing is left.
MAX_SENDERS = 1
MAX_CONNECTIONS = 3  # the held poll, the sender, one spare
# An answer is one envelope: it is read up to the size a listener accepts, and no further.
MAX_ANSWER_BYTES = envelope.MAX_BODY_BYTES
# A dropped connection is tried again at once this often before the link counts as failing:
# a middlebox that cuts idle connections may have cut every pooled one at the same moment.
DROP_RETRIES = MAX_CONNECTIONS
# hello.resend asking for every unacked message again (the largest sequence number)
EVERYTHING = 2**63 - 1
# The engine's own generator: the global one is left to the code that shares the process (a
# property test watching it saw the dialer's jitter as its own randomness).
_JITTER = random.Random()


class LinkDown(Exception):
    """An exchange failed; the message says why in words an operator can act on.

    ``is_dropped``: the connection was open and then lost (a reset, or a middlebox that cut
    it), as opposed to a peer that cannot be reached, stays silent, or refuses.
    """

    def __init__(self, message: str, *, is_dropped: bool = False) -> None:
        super().__init__(message)
        self.is_dropped = is_dropped


class InFlight:
    """Which outbox messages the open requests of one dialer carry, and what it last applied.

    Used from worker threads (choosing a batch, recording an answer) and from the event loop
    (forgetting a request, noting a new message); one lock guards all of it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # exchange number -> highest sequence it carries
        self._carried: dict[int, int] = {}
        # The highest sequence applied from the other side, as the last answers left it: a
        # held poll acknowledges this without reading the store (a stale value only delays
        # the other side's clean-up; the listener never moves its acked cursor back).
        self._applied = 0
        # False once a look found the outbox empty, until a message is written (an OUTBOX
        # event): a held poll then need not read the store to know it carries nothing.
        self._may_have_pending = True
        # Whether requests ask the listener for every unacked message again (hello.resend,
        # protocol 2): at the start, and after an exchange that was lost or whose answer
        # could not all be applied (a gap, when answers overtook each other). A number, so
        # that only the answer to a request that asked after the latest loss clears it.
        self._losses = 1
        self._resend_after = 1  # the losses count a resend is wanted for; 0: none wanted
        self._resend_upto = EVERYTHING  # the highest message wanted again
        self._speaks_resend = False  # the listener's hello lists protocol 2
        # The open exchange that asked about the latest loss: the others do not ask too (one
        # prepared ahead, with the same stale ack, would bring every message a second time).
        self._asker: int | None = None
        self._open: set[int] = set()  # exchanges whose answers may still come
        # Messages an answer held but that could not be applied (lowest, highest): an answer
        # that overtook another, which carries the ones below. Asked for again once that
        # other answer has closed the hole below them, or once every exchange that was open
        # then is over without closing it.
        self._hole: tuple[int, int] | None = None
        self._hole_watch: set[int] = set()

    def choose(
        self,
        number: int,
        *,
        is_poll_at_once: bool,
        is_sending: bool,
        look: Callable[[int], tuple[LinkState, list[Message]]],
    ) -> tuple[list[Message], int] | None:
        """The batch exchange ``number`` carries and the ack it sends; None when it is only
        sending, nothing is left that no other open request carries, and no resend is
        wanted. ``look(floor)``
        reads the link state and the messages after ``floor`` (blocking)."""
        batch: list[Message] = []
        with self._lock:
            self._open.add(number)
            # A held poll carries messages only when no other request does: one that overtook
            # an earlier request could not apply them (a gap), and they would wait out the
            # hold counted as sent. A sender on its way sends until nothing is left.
            is_carrying = is_poll_at_once or (not self._carried and self._may_have_pending)
            if is_carrying or not self._applied:
                self._may_have_pending = False  # before the look: a later message sets it
                # Messages up to the floor are on their way in requests still open; the
                # lock keeps two requests from choosing the same ones.
                state, pending = look(max(self._carried.values(), default=0))
                ack = state.applied_seq
                if is_carrying:
                    batch = pending
                if pending or self._carried:
                    self._may_have_pending = True
            else:
                ack = self._applied
            # A sender also goes to ask for a resend: the held poll may wait out its hold.
            if is_sending and not batch and not self._may_ask():
                return None
            if batch:
                self._carried[number] = batch[-1].seq
        return batch, ack

    def forget(self, number: int) -> None:
        """Exchange ``number`` is over: what it carried is delivered or back in the outbox."""
        with self._lock:
            self._carried.pop(number, None)
            self._open.discard(number)
            if self._asker == number:  # answered whole, or not: then the next one asks
                self._asker = None
            if self._hole is not None:
                self._hole_watch.discard(number)
                if not self._hole_watch:  # none of them closed it: they will not
                    self._want_resend()

    def applied(self, number: int, cursor: int, unapplied: list[int]) -> None:
        """The answer of exchange ``number`` was applied up to ``cursor``; ``unapplied``:
        the sequences it held above the cursor (a gap below them)."""
        with self._lock:
            self._applied = max(self._applied, cursor)
            if unapplied:
                low, high = min(unapplied), max(unapplied)
                if self._hole is not None:
                    low, high = min(low, self._hole[0]), max(high, self._hole[1])
                else:
                    self._hole_watch = self._open - {number}
                self._hole = (low, high)
                if not self._hole_watch:  # no answer on its way can fill the gap
                    self._want_resend()
            elif self._hole is not None and cursor >= self._hole[0] - 1:
                # The gap is closed; what lay above it was not applied, so it comes again.
                if cursor < self._hole[1]:
                    self._want_resend()
                else:
                    self._hole = None

    def message_written(self) -> None:
        """A message was written to the outbox: the next poll looks again."""
        with self._lock:
            self._may_have_pending = True

    def resend(self, number: int) -> tuple[int | None, int]:
        """What exchange ``number`` says in hello.resend: the highest unacked message wanted
        again, 0 for none (None: the listener would not understand it); and the loss it
        asks about (0: none). One open exchange at a time asks about a loss."""
        with self._lock:
            if not self._speaks_resend:
                return None, 0
            if not self._may_ask():
                return 0, 0
            self._asker = number
            return self._resend_upto, self._resend_after

    def _may_ask(self) -> bool:  # with the lock held
        return self._speaks_resend and bool(self._resend_after) and self._asker is None

    def lost(self) -> None:
        """An exchange failed after its request may have gone: the listener must deliver
        everything unacked again."""
        with self._lock:
            self._want_resend()

    def _want_resend(self, upto: int = 0) -> None:  # with the lock held
        """Ask for the unacked messages up to ``upto`` again (0: all of them)."""
        wanted = upto or EVERYTHING
        self._resend_upto = max(wanted, self._resend_upto) if self._resend_after else wanted
        self._losses += 1
        self._resend_after = self._losses
        self._asker = None  # a new loss: the next exchange asks about it
        self._hole = None
        self._hole_watch = set()

    def answered(self, asked: int, their_hello: dict[str, Any] | None) -> None:
        """An answer was applied whole; ``asked``: the loss its request asked about."""
        with self._lock:
            self._speaks_resend = protocol.speaks_resend(their_hello)
            if asked and asked == self._resend_after:
                self._resend_after = 0


class Dialer:
    """Drives one enabled sync config that has a Remote URL."""

    def __init__(
        self,
        ctx: Context,
        ring: KeyRing,
        config: SyncConfig,
        *,
        long_poll_s: float,
        max_skew_s: float,
        health: exchange.Health,
        env_proxies: dict[str, str] | None = None,
        lease: tuple[str, int] | None = None,
    ) -> None:
        self._ctx = ctx
        # (process id, epoch) of this link's dialer lease; every apply checks it is current
        self._lease = lease
        self._ring = ring
        self._config = config
        self._name = config.name
        self._url = config.remote_url or ""
        self._receiver = configs.check_remote_url(self._url)
        self._long_poll_s = long_poll_s
        self._is_cut_reported = False  # whether the log said that something cuts held polls
        self._max_skew_s = max_skew_s
        self._health = health
        self._client: aiohttp.ClientSession | None = None  # made in run(), on the loop
        # The sync config's own proxy wins over the server's HTTPS_PROXY/HTTP_PROXY/NO_PROXY.
        self._proxy = configs.proxy_url(ctx, config) or proxy_from_environment(
            self._url, env_proxies or {}
        )
        self._in_flight = InFlight()
        self._exchanges = itertools.count()
        # Set while the poll loop lingers before renewing: a message written meanwhile
        # renews the poll at once, which carries it (see _linger).
        self._renew: asyncio.Event | None = None
        # The coding the listener's last answer said it takes request bodies in (None:
        # plain): every answer says it again (or not, after a downgrade), so this follows
        # the listener.
        self._peer_coding: str | None = None

    async def run(self) -> None:
        """Exchange until cancelled."""
        if not self._config.verify_ssl:
            log.warning(
                "sync config %s: TLS verification is off; anyone between here and %s can read and alter traffic",
                self._name,
                self._url,
            )
        self._client = _client(self._config)
        try:
            if self._config.sync_interval_s:
                await self._every_interval(self._config.sync_interval_s)
            else:
                await asyncio.gather(self._poll_loop(), self._send_loop())
        finally:
            await self._client.close()

    async def _poll_loop(self) -> None:
        backoff = BACKOFF_START_S
        # The first exchange after a start or a failure is answered at once, so that the
        # link shows connected (or the first-contact problem) without waiting out a hold.
        poll_s = 0.0
        while True:
            try:
                done = await self._exchange_or_retry(poll_s)
                backoff = BACKOFF_START_S
                poll_s = next_hold_s(self._long_poll_s, poll_s)
                if done is not None and done.delivered:
                    await self._linger()
            except LinkDown as exc:
                backoff = await self._failed(str(exc), backoff)
                poll_s = 0.0

    async def _linger(self) -> None:
        """Wait before renewing the poll, until this side writes a message or LINGER_S passes.

        Messages that just arrived (a start) are usually answered within milliseconds (its
        end, as an update). The renewed poll then carries that answer: one request and two
        signatures per round, where a renewal at once and a separate sender would take two
        requests and four signatures. The other side cannot deliver meanwhile, so LINGER_S
        bounds what that costs a message of its own.
        """
        self._renew = asyncio.Event()
        try:
            await aio.wait_event(self._renew, LINGER_S)
        finally:
            self._renew = None

    async def _send_loop(self) -> None:
        # Up to MAX_SENDERS requests carry new messages at once, each with messages the
        # others do not carry (see MAX_SENDERS for why it is one).
        # A wake-up while every sender is busy waits for a free one rather than being
        # dropped: a sender about to find nothing left would otherwise leave the new
        # message for the next long-poll, a whole hold period later.
        slots = asyncio.Semaphore(MAX_SENDERS)
        async with asyncio.TaskGroup() as senders:
            with self._ctx.events.watch(Event.OUTBOX, [self._name]) as watch:
                while True:
                    await watch.wait(3600)
                    self._in_flight.message_written()
                    if self._renew is not None:
                        # The poll loop lingers: its renewal carries the message. If a
                        # sender is on its way, the renewal carries nothing and that
                        # sender, which sends until nothing is left, takes it instead.
                        self._renew.set()
                        continue
                    await slots.acquire()
                    senders.create_task(self._send_while_unsent(slots))

    async def _send_while_unsent(self, slots: asyncio.Semaphore) -> None:
        backoff = BACKOFF_START_S
        try:
            while True:
                try:
                    if await self._exchange_or_retry(0.0, is_sending=True) is None:
                        return  # nothing left that no other request carries
                    backoff = BACKOFF_START_S
                except LinkDown as exc:
                    backoff = await self._failed(str(exc), backoff)
        finally:
            slots.release()

    async def _every_interval(self, interval_s: float) -> None:
        backoff = BACKOFF_START_S
        while True:
            try:
                await self._exchange_or_retry(0.0)  # on at once while envelopes come full
                backoff = BACKOFF_START_S
                await asyncio.sleep(interval_s)
            except LinkDown as exc:
                backoff = await self._failed(str(exc), backoff)

    async def _exchange_or_retry(
        self, poll_s: float, *, is_sending: bool = False
    ) -> Exchanged | None:
        """One exchange; when its connection drops, again at once before it counts as failed.

        A middlebox that cuts idle connections (a held long-poll is idle), or a reset, is
        not a failing link; a drop on a fresh connection too is.
        """
        for _ in range(DROP_RETRIES):
            try:
                return await self.exchange(poll_s, is_sending=is_sending)
            except LinkDown as exc:
                if not exc.is_dropped:
                    raise
                self._report_drop(str(exc), poll_s)
                poll_s = 0.0
        return await self.exchange(poll_s, is_sending=is_sending)

    def _report_drop(self, error: str, poll_s: float) -> None:
        if poll_s > 0 and not self._is_cut_reported:
            self._is_cut_reported = True
            log.info(
                "sync config %s: a held long-poll was cut (%s); if a proxy between the "
                "workspaces cuts idle connections, set --long-poll-s below its idle timeout",
                self._name,
                error,
            )
        else:
            log.debug("sync config %s: %s; trying again at once", self._name, error)

    async def _failed(self, error: str, backoff: float) -> float:
        log.warning("sync config %s: %s", self._name, error)
        await asyncio.to_thread(self._health.failure, self._name, error)
        await asyncio.sleep(_JITTER.uniform(backoff / 2, backoff))
        return min(backoff * 2, BACKOFF_CAP_S)

    async def exchange(self, poll_s: float, *, is_sending: bool = False) -> Exchanged | None:
        """Exchanges until one leaves nothing behind: one request and its response, and
        while envelopes come full (a backlog), the next ones at once.

        ``is_sending``: only when there are messages no other open request carries; None
        when there are none.

        While a backlog lasts, the next request is on its way while the previous answer is
        applied, and a sender's next batch is chosen and sealed while the previous request
        is on its way; each request is posted once the previous one's answer came, and the
        answers are applied in turn, so the other side sees them in order as before.

        Raises:
            LinkDown: an exchange failed; nothing was lost (messages stay in the outbox).
        """
        step = self._start(poll_s, is_sending=is_sending, after=None)
        ahead: _Step | None = None
        done: Exchanged | None = None
        try:
            while True:
                if await step.is_full_batch or (done is not None and done.is_full):
                    ahead = self._start(0.0, is_sending=is_sending, after=step)
                requested = await step.task
                if requested is None:
                    return done
                done = await self._finish(requested)
                if ahead is not None:
                    step, ahead = ahead, None
                elif done.is_full:
                    step = self._start(0.0, is_sending=is_sending, after=None)
                else:
                    return done
        finally:
            await aio.stop_tasks(*(s.task for s in (step, ahead) if s is not None))

    def _start(self, poll_s: float, *, is_sending: bool, after: _Step | None) -> _Step:
        """Start one request: chosen and sealed at once, posted once ``after``'s answer came."""
        step = _Step(asyncio.get_running_loop())
        step.task = asyncio.create_task(
            self._request(step, poll_s, is_sending=is_sending, after=after)
        )
        return step

    async def _request(
        self, step: _Step, poll_s: float, *, is_sending: bool, after: _Step | None
    ) -> Requested | None:
        """Choose, seal and post one request; its answer as it came (None: only sending, and
        nothing was left to send)."""
        # The config is the one this dialer was started with: the linker starts a new
        # dialer when it changes.
        config = self._config
        number = next(self._exchanges)
        is_handed_on = False
        try:
            # Choosing the batch and signing it take one worker-thread hop, not two.
            try:
                prepared = await asyncio.to_thread(
                    self._prepare, config, number, poll_s, is_sending=is_sending
                )
            except errors.InvalidInput as exc:  # no key to sign with: the status says so
                raise LinkDown(exc.message) from exc
            if prepared is None:
                return None
            batch, sealed, wire, asked = prepared
            step.chose(batch)
            if after is not None:
                await after.came.wait()
            try:
                answer = await self._post(wire, poll_s)
            except Exception:
                self._in_flight.lost()  # whatever the listener delivered, it delivers again
                raise
            step.came.set()
            is_handed_on = True
            return Requested(number, config, batch, sealed, answer, asked)
        finally:
            step.chose([])  # when it chose nothing, or failed first
            if not is_handed_on:
                self._in_flight.forget(number)

    async def _finish(self, requested: Requested) -> Exchanged:
        """Verify and apply the answer of ``requested`` (in a worker thread: one hop, not three)."""
        try:
            return await asyncio.to_thread(self._take_answer, requested)
        except Exception:
            self._in_flight.lost()  # whatever the listener delivered, it delivers again
            raise
        finally:
            self._in_flight.forget(requested.number)

    def _prepare(
        self, config: SyncConfig, number: int, poll_s: float, *, is_sending: bool
    ) -> tuple[list[Message], protocol.Sealed, Wire, int] | None:
        """The messages exchange ``number`` carries, its sealed envelope, what goes on the
        wire (compressed when the listener takes it) and the loss it asks the listener to
        make good (0: none); None when it is only sending and there is nothing that no other
        open request carries. Blocking."""
        chosen = self._in_flight.choose(
            number,
            is_poll_at_once=poll_s == 0,
            is_sending=is_sending,
            look=lambda floor: exchange.pending_batch(self._ctx, self._name, floor),
        )
        if chosen is None:
            return None
        batch, ack = chosen
        resend, asked = self._in_flight.resend(number)
        sealed = self._seal(config, ack, batch, poll_s, resend)
        headers = {**sealed.headers, "Accept-Encoding": compression.ANNOUNCED}
        coding = self._peer_coding
        if coding is not None and len(sealed.body) >= compression.MIN_BYTES:
            headers["Content-Encoding"] = coding
            return batch, sealed, Wire(compression.compress(sealed.body, coding), headers), asked
        return batch, sealed, Wire(sealed.body, headers), asked

    def _seal(
        self,
        config: SyncConfig,
        ack: int,
        batch: list[Message],
        poll_s: float,
        resend: int | None,
    ) -> protocol.Sealed:
        return protocol.seal(
            self._ctx,
            self._ring,
            config,
            receiver=self._receiver,
            ack=ack,
            messages=batch,
            hello_=protocol.hello(self._ctx, config, poll_s, resend),
        )

    def _take_answer(self, requested: Requested) -> Exchanged:
        """Verify and apply the listener's answer; blocking, in a worker thread."""
        config, response, sealed = requested.config, requested.answer, requested.sealed
        try:
            body = compression.decode(response.body, response.encoding, MAX_ANSWER_BYTES)
        except errors.PayloadTooLarge as exc:
            raise LinkDown(_too_large(self._url, MAX_ANSWER_BYTES)) from exc
        except errors.InvalidInput as exc:
            raise LinkDown(f"the answer from {self._url} is unreadable: {exc.message}") from exc
        try:
            answer = protocol.open_(
                self._ctx,
                self._ring,
                config,
                body,
                response.headers,
                receiver=self._name,
                max_skew_s=self._max_skew_s,
            )
        except errors.EnvelopeRejected as exc:
            raise LinkDown(
                f"the answer from {self._url} did not verify ({exc.reason}): check that remote_public_key "
                "holds the other side's current public key"
            ) from exc
        if answer.sender != self._receiver:
            raise LinkDown(
                f"the answer from {self._url} comes from sync config {answer.sender!r}, not "
                f"{self._receiver!r}: check remote_url"
            )
        if answer.reply_to != envelope.body_digest(sealed.body):
            raise LinkDown(
                f"the answer from {self._url} does not answer our request (reply_to differs)"
            )
        problem = protocol.hello_problem(config, answer.hello)
        if problem is not None:
            raise LinkDown(problem)
        inbound = list(answer.messages)
        health = self._health.success_values(config, answer.hello)
        applied = incoming.apply_envelope(
            self._ctx, config, inbound, answer.ack, None, health, dialer=self._lease
        )
        if health is not None:
            self._health.recorded(config)
        self._health.counted(config.name, len(inbound), applied.repeats)
        unapplied = [message.seq for message in inbound if message.seq > applied.cursor]
        self._in_flight.applied(requested.number, applied.cursor, unapplied)
        if not unapplied:
            self._in_flight.answered(requested.asked, answer.hello)
        # Only a full envelope means a backlog; anything newer waits for the next interval.
        return Exchanged(
            is_full=exchange.is_full(requested.batch) or exchange.is_full(answer.messages),
            delivered=len(answer.messages),
        )

    async def _post(self, wire: Wire, poll_s: float) -> Answer:
        assert self._client is not None, "run() makes the client"
        timeout = aiohttp.ClientTimeout(
            total=None, connect=CONNECT_TIMEOUT_S, sock_read=poll_s + EXTRA_READ_S
        )
        try:
            async with self._client.post(
                self._url,
                data=wire.body,
                headers=wire.headers,
                timeout=timeout,
                allow_redirects=False,  # a signed request goes where remote_url says, only
                proxy=self._proxy,
            ) as response:
                self._peer_coding = compression.chosen(response.headers.get("Accept-Encoding"))
                body = await _read_limited(response, self._url, MAX_ANSWER_BYTES)
                if response.status != 200:
                    raise LinkDown(_status_error(self._url, response.status, body, self._receiver))
                return Answer(
                    body, dict(response.headers), response.headers.get("Content-Encoding")
                )
        except aiohttp.ClientProxyConnectionError as exc:
            raise LinkDown(
                f"cannot connect to the proxy {configs.shown_proxy_url(self._proxy)} ({exc}): "
                "is it running, and is proxy_url (or HTTPS_PROXY) right?"
            ) from exc
        except aiohttp.ClientHttpProxyError as exc:
            raise LinkDown(_proxy_error(self._url, self._proxy, exc)) from exc
        except aiohttp.ClientConnectorError as exc:
            raise LinkDown(_connect_error(self._url, exc)) from exc
        except TimeoutError as exc:
            raise LinkDown(
                f"no answer from {self._url} in time ({type(exc).__name__}): the other side or the network is not responding"
            ) from exc
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientOSError,
            aiohttp.ClientPayloadError,
        ) as exc:
            raise LinkDown(
                f"the connection to {self._url} was lost: {exc!r}; it will be retried",
                is_dropped=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise LinkDown(
                f"the connection to {self._url} failed: {exc!r}; it will be retried"
            ) from exc


def next_hold_s(long_poll_s: float, previous_s: float, rng: random.Random | None = None) -> float:
    """How long the listener may hold the poll that follows one held for ``previous_s``.

    The first hold after a connect (previous_s 0: answered at once) is of random length:
    links that connected together (all of a hub's, when it restarts) would otherwise renew
    together, every hold, in waves that delay every other request on both sides.
    """
    if previous_s > 0:
        return long_poll_s
    return long_poll_s * (rng or random).uniform(FIRST_HOLD_MIN, 1.0)


@dataclass(frozen=True)
class Exchanged:
    """How one exchange went."""

    is_full: bool  # an envelope was full: more may wait
    delivered: int  # messages the answer carried


@dataclass(frozen=True)
class Requested:
    """An exchange whose answer came, not applied yet."""

    number: int
    config: SyncConfig
    batch: list[Message]  # what the request carried
    sealed: protocol.Sealed  # the request as signed
    answer: Answer
    asked: int  # the loss the request asked the listener to make good (0: none)


class _Step:
    """One request of ``Dialer.exchange`` on its way, and what the next one waits for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Whether the batch it carries fills an envelope (a backlog: the next request is
        # started at once); set once it has chosen, or failed before.
        self.is_full_batch: asyncio.Future[bool] = loop.create_future()
        self.came = asyncio.Event()  # its answer came: the next request may be posted
        self.task: asyncio.Task[Requested | None]

    def chose(self, batch: list[Message]) -> None:
        if not self.is_full_batch.done():
            self.is_full_batch.set_result(exchange.is_full(batch))


@dataclass(frozen=True)
class Wire:
    """A request as it goes on the wire: the body (the envelope, perhaps gzip) and headers."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    """The listener's answer as it came: the body (perhaps gzip) and the HTTP headers."""

    body: bytes
    headers: dict[str, str]
    encoding: str | None = None  # its Content-Encoding


def _client(config: SyncConfig) -> aiohttp.ClientSession:
    verify: ssl.SSLContext | bool = True
    if not config.verify_ssl:
        verify = False
    elif config.ca_certificate:
        verify = ssl.create_default_context(cadata=config.ca_certificate)
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=verify)
    # Answers are decompressed by _take_answer, up to MAX_ANSWER_BYTES, not by aiohttp.
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)


async def _read_limited(response: aiohttp.ClientResponse, url: str, limit: int) -> bytes:
    """The body of ``response``, refused once it passes ``limit`` bytes (never read whole)."""
    if (response.content_length or 0) > limit:
        raise LinkDown(_too_large(url, limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise LinkDown(_too_large(url, limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(url: str, limit: int) -> str:
    return (
        f"{url} answered with more than {limit} bytes: no envelope is that large; "
        "check remote_url, or what answers there"
    )


def proxy_from_environment(url: str, proxies: dict[str, str]) -> str | None:
    """The proxy the server's environment names for ``url`` (as urllib reads HTTPS_PROXY,
    HTTP_PROXY and NO_PROXY: ``proxies`` maps scheme to proxy, and "no" to the exceptions)."""
    parsed = urllib.parse.urlparse(url)
    proxy = proxies.get(parsed.scheme)
    # urllib's own NO_PROXY matching (ports, suffixes, "*"); its stubs do not list it
    if not proxy or urllib.request.proxy_bypass_environment(parsed.netloc, proxies):  # type: ignore[attr-defined]
        return None
    return proxy


def _proxy_error(url: str, proxy: str | None, exc: aiohttp.ClientHttpProxyError) -> str:
    shown = configs.shown_proxy_url(proxy)
    if exc.status == 407:
        return (
            f"the proxy {shown} wants credentials (407 Proxy Authentication Required): put "
            "the proxy's user and password into proxy_url, http://USER:PASSWORD@HOST:PORT"
        )
    return (
        f"the proxy {shown} refused to connect to {url} ({exc.status} {exc.message}): ask its "
        "administrator to allow CONNECT to that host and port"
    )


def _connect_error(url: str, exc: aiohttp.ClientConnectorError) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
        return (
            f"the TLS certificate of {url} is not trusted ({text}): set ca_certificate to the PEM of "
            "the CA that signed it, or fix the certificate"
        )
    return f"cannot connect to {url} ({text or type(exc).__name__}): is the other workspace running and reachable from here?"


def _status_error(url: str, status: int, body: bytes, receiver: str) -> str:
    if status == 401:
        return (
            f"{url} refused our envelope (401): check that the other workspace has an enabled sync config "
            f"'{receiver}' holding this side's public key, and that both clocks are right"
        )
    if status == 404:
        return f"{url} has no sync endpoint (404): check remote_url"
    if status == 413:
        return f"{url} refused the envelope as too large (413)"
    if 300 <= status < 400:
        return (
            f"{url} answered {status}, a redirect, which a link never follows: set remote_url "
            "to the sync URL itself"
        )
    text = body[:2000].decode("utf-8", "replace")
    with contextlib.suppress(ValueError, AttributeError):
        return f"{url} answered {status}: {json.loads(text).get('message', text[:200])}"
    return f"{url} answered {status}: {text[:200]}"
