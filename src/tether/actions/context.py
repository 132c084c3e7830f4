"""What every use case needs: the database, the event hub, the clock, the workspace's identity.

Built once by the composition root and handed down; use cases open one transaction each.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tether.actions.events import Events
from tether.store import database, notices
from tether.store.database import Database


@dataclass
class Transaction:
    """One open transaction and the events to publish once it commits."""

    conn: database.Connection
    pending: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, kind: str, key: str = "") -> None:
        """Publish ``kind``/``key`` after a successful commit."""
        self.pending.append((kind, key))


@dataclass
class Context:
    db: Database
    events: Events
    workspace_name: str
    secret: bytes = b""
    clock: Callable[[], float] = time.time
    # Set when other processes share the store (PostgreSQL): each transaction's events are
    # announced to them too, marked with this process's token (actions/wakeups.py).
    origin: str | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A transaction whose events are published after it commits."""
        with self.db.begin() as conn:
            tx = Transaction(conn)
            yield tx
            if tx.pending and self.origin is not None:
                notices.send(conn, self.origin, dict.fromkeys(tx.pending))
        self.events.publish_all(dict.fromkeys(tx.pending))

    def now(self) -> float:
        return self.clock()
