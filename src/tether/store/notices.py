"""Wake-ups across the processes of one PostgreSQL store: NOTIFY in the writing transaction
(delivered at its commit, dropped at its rollback) and one LISTEN connection per process.

They only wake: the store stays the truth, and every waiter also polls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg
import sqlalchemy as sa

log = logging.getLogger(__name__)

CHANNEL = "tether_events"
MAX_PAYLOAD_BYTES = 7000  # PostgreSQL's limit is 8000 bytes a notification
LISTEN_TICK_S = 1.0  # how often the listening thread looks up from its connection
RECONNECT_S = 1.0
# TCP keepalives notice a LISTEN connection whose peer vanished (a black-holed network)
# while it waits in about 5 + 3 * 2 = 11 s, where the kernel's defaults would take two
# hours; the user timeout does the same for its SELECT 1 sent into the void (keepalives
# stay silent while sent data waits for its ACK, and retransmissions go on for 15 minutes).
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 11_000,  # ms
}
APPLICATION_NAME = "tether-listen"  # how an operator (or a test) finds these connections

_NOTIFY = sa.text(f"SELECT pg_notify('{CHANNEL}', :payload)")

Event = tuple[str, str]


def send(conn: sa.Connection, origin: str, events: Iterable[Event]) -> None:
    """Announce ``events`` (kind, key) to the other processes once ``conn``'s transaction
    commits; ``origin`` lets this process skip its own."""
    for payload in _payloads(origin, [f"{kind}\t{key}" for kind, key in events]):
        conn.execute(_NOTIFY, {"payload": payload})


def _payloads(origin: str, lines: list[str]) -> Iterator[str]:
    chunk: list[str] = []
    size = len(origin)
    for line in lines:
        if chunk and size + len(line) + 1 > MAX_PAYLOAD_BYTES:
            yield "\n".join([origin, *chunk])
            chunk, size = [], len(origin)
        chunk.append(line)
        size += len(line.encode()) + 1
    if chunk:
        yield "\n".join([origin, *chunk])


def parse(payload: str) -> tuple[str, list[Event]]:
    """The origin and the (kind, key) events of one notification."""
    origin, *lines = payload.split("\n")
    events = []
    for line in lines:
        kind, _tab, key = line.partition("\t")
        events.append((kind, key))
    return origin, events


class Listener:
    """A thread holding one LISTEN connection: hands other processes' events to
    ``on_event``, and calls ``on_listening`` each time it (re)starts listening, for what
    may have been announced while it was not."""

    def __init__(
        self,
        url: str,
        origin: str,
        on_event: Callable[[str, str], None],
        on_listening: Callable[[], None],
    ) -> None:
        self._conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(False)
        self._origin = origin
        self._on_event = on_event
        self._on_listening = on_listening
        self._is_stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tether-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._is_stopping.set()
        self._thread.join(LISTEN_TICK_S * 3)

    def _run(self) -> None:
        while not self._is_stopping.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:  # the thread's edge: reconnect and listen again
                log.warning("the LISTEN connection failed (%s); listening again", exc)
            self._is_stopping.wait(RECONNECT_S)

    def _listen(self) -> None:
        connect = psycopg.connect(
            self._conninfo, autocommit=True, application_name=APPLICATION_NAME, **KEEPALIVES
        )
        with connect as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._on_listening()
            while not self._is_stopping.is_set():
                for notice in conn.notifies(timeout=LISTEN_TICK_S):
                    self._deliver(notice.payload)
                conn.execute("SELECT 1")  # a dead connection raises here, not silently

    def _deliver(self, payload: str) -> None:
        origin, events = parse(payload)
        if origin == self._origin:
            return
        for kind, key in events:
            self._on_event(kind, key)
