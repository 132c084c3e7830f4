"""In-process wake-ups: who must look at the store again after a commit.

Publishing is safe from any thread; watching happens on the event loop bound at start-up.
Events only wake; the store stays the truth, so a missed event costs latency, never data.
The kinds of event are `tether.statuses.Event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from tether import aio

V = TypeVar("V")
log = logging.getLogger(__name__)


class Watch:
    """A subscription to some (kind, key) events; arm it before reading the store."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def _fire(self) -> None:
        self._event.set()

    def wake(self) -> None:
        """End the current wait at once, as an event would; on the loop."""
        self._fire()

    async def wait(self, timeout_s: float) -> bool:
        """Wait for the next event since the last wait; False when ``timeout_s`` passed first."""
        if not await aio.wait_event(self._event, timeout_s):
            return False
        self._event.clear()
        return True


class Events:
    """A small publish/subscribe hub keyed by (kind, key)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watches: dict[tuple[str, str], set[Watch]] = defaultdict(set)
        self._listeners: dict[str, list[Callable[[str], None]]] = defaultdict(list)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver events on ``loop`` from now on."""
        self._loop = loop

    def listen(self, kind: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(key)`` on the loop for every event of ``kind``."""
        self._listeners[kind].append(callback)

    def publish(self, kind: str, key: str = "") -> None:
        """Announce an event, from any thread."""
        self.publish_all([(kind, key)])

    def publish_all(self, events: Iterable[tuple[str, str]]) -> None:
        """Announce events (kind, key), in order, from any thread; from another thread, the
        loop is woken once for all of them (a cancel of 3,000 announces 3,000)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        batch = tuple(events)
        try:
            is_on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            is_on_loop = False
        if is_on_loop:
            self._deliver_all(batch)
        elif batch:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._deliver_all, batch)

    def wake_all(self, kinds: Iterable[str]) -> None:
        """End every wait, and announce a change of each of ``kinds`` with no key; from any
        thread. For a time in which events may have been missed: waiters read the store."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._wake_all, tuple(kinds))

    def _wake_all(self, kinds: tuple[str, ...]) -> None:
        for watching in list(self._watches.values()):
            for watch in list(watching):
                watch._fire()
        for kind in kinds:
            for callback in self._listeners.get(kind, ()):
                callback("")

    def _deliver_all(self, events: tuple[tuple[str, str], ...]) -> None:
        for kind, key in events:
            for watch in list(self._watches.get((kind, key), ())):
                watch._fire()
            for callback in self._listeners.get(kind, ()):
                try:
                    callback(key)
                except Exception:  # one listener's failure must not drop the rest of a batch
                    log.exception("a listener of %s events failed on %r", kind, key)

    @contextlib.contextmanager
    def watch(self, kind: str, keys: Iterable[str] = ("",)) -> Iterator[Watch]:
        """Subscribe to events of ``kind`` on ``keys`` for the duration of the block."""
        watch = Watch()
        pairs = [(kind, key) for key in keys]
        for pair in pairs:
            self._watches[pair].add(watch)
        try:
            yield watch
        finally:
            for pair in pairs:
                watching = self._watches.get(pair)
                if watching is not None:
                    watching.discard(watch)
                    if not watching:
                        del self._watches[pair]


class KeptUntilChanged(Generic[V]):
    """Values read from the store, all kept until an event of ``kind`` announces a change.

    For what every request reads and only this process's own actions change (announcing
    it after the commit). A read that a change overtook is not kept. At most ``max_kept``
    values are held: keys can come from outside (token digests, names in URLs).
    """

    def __init__(self, events: Events, kind: str, max_kept: int = 10_000) -> None:
        self._values: dict[str, V] = {}
        self._generation = 0  # bumped at each announced change
        self._lock = threading.Lock()  # a change is never announced between check and keep
        self._max_kept = max_kept
        events.listen(kind, self._forget)

    def _forget(self, _key: str) -> None:
        with self._lock:
            self._generation += 1
            self._values.clear()

    def kept(self, key: str) -> tuple[bool, V | None]:
        """(True, value) when ``key``'s value is kept, else (False, None); never blocks."""
        try:
            return True, self._values[key]
        except KeyError:
            return False, None

    def read(self, key: str, reader: Callable[[], V]) -> V:
        """``reader()``'s value for ``key``, kept unless a change was announced meanwhile."""
        generation = self._generation
        value = reader()
        with self._lock:
            if generation == self._generation:
                if len(self._values) >= self._max_kept:
                    self._values.clear()
                self._values[key] = value
        return value
