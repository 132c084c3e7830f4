"""A received execution's RUNNING announcement never follows its end over the link.

The runner announces RUNNING a moment after the child started; a quick script may end in
that moment. The announcement reads the execution locked, so on PostgreSQL it waits for an
end being written and then sees it (unlocked, it read RUNNING under the uncommitted end and
queued a RUNNING update behind the ENDED one: the controlling side heard of a run after its
end, and a test that waited for the end saw the outbox grow afterwards). The control reads
it unlocked, as before. SQLite takes its write lock at BEGIN, which serializes the two on
its own: the control needs PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.stores import add_executions, add_link, open_contexts
from tether.actions import executions as execution_actions
from tether.actions.context import Context
from tether.statuses import Status
from tether.store import executions, outbox

ANNOUNCER = "announcer"
END_HELD_S = 0.3  # how long the end stays uncommitted while the announcement runs


@pytest.fixture
def contexts(database_url: str) -> Iterator[Callable[[], Context]]:
    with open_contexts(database_url) as open_:
        yield open_


def statuses_sent(ctx: Context) -> list[str]:
    """The statuses of the updates queued for 'hq', in the order the link sends them."""
    with ctx.db.begin() as conn:
        return [message.body["status"] for message in outbox.pending(conn, "hq", limit=100)]


def announce_during_end(contexts: Callable[[], Context]) -> list[str]:
    """End a running received execution and, while that end is not yet committed, announce
    it running from another worker; the statuses then queued for the link."""
    ctx = contexts()
    add_link(ctx)
    [execution_id] = add_executions(ctx, 1, executions.RECEIVED, status=Status.RUNNING)
    ending = threading.Event()
    failures: list[BaseException] = []

    def announce() -> None:
        try:
            ending.wait(10)
            execution_actions.announce_running(contexts(), execution_id)
        except BaseException as exc:
            failures.append(exc)

    announcer = threading.Thread(target=announce, name=ANNOUNCER)
    announcer.start()
    with ctx.transaction() as tx:
        execution_actions.end_in(ctx, tx, execution_id, Status.ENDED_SUCCESS, None)
        ending.set()
        time.sleep(END_HELD_S)  # the announcement reads meanwhile
    announcer.join(30)
    assert not announcer.is_alive() and not failures, failures
    return statuses_sent(ctx)


def test_a_running_announcement_never_follows_the_end(
    contexts: Callable[[], Context],
) -> None:
    sent = announce_during_end(contexts)
    assert sent[-1] == Status.ENDED_SUCCESS, f"the link's last word was {sent[-1]}: {sent}"


def test_control_read_unlocked_it_followed_the_end(
    contexts: Callable[[], Context], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite serializes writers at BEGIN: the race needs PostgreSQL")
    locked = executions.get_for_update

    def unlocked_for_the_announcer(conn: sa.Connection, execution_id: str) -> Any:
        if threading.current_thread().name == ANNOUNCER:
            return executions.get(conn, execution_id)
        return locked(conn, execution_id)

    monkeypatch.setattr(executions, "get_for_update", unlocked_for_the_announcer)
    sent = announce_during_end(contexts)
    assert sent[-1] == Status.RUNNING, sent
