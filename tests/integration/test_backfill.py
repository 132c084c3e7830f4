"""send_all_executions: the backfill moves at the pace of the other side's acks."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.envelopes import Link, create_controlling
from tests.support.waiting import wait_until
from tether.actions import executions as execution_actions
from tether.actions import mirroring
from tether.actions.context import Context
from tether.link import envelope, linker
from tether.statuses import Status
from tether.store import executions

CONTROLLED_HELLO = {"workspace": "hq", "role": "controlled", "protocols": [1], "poll_s": 0}
PAST = 40


@pytest.fixture
def no_housekeeping_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the app starts: the linker's periodic round never comes within a test."""
    monkeypatch.setattr(linker, "HOUSEKEEPING_S", 3600.0)
    monkeypatch.setattr(mirroring, "PAGE", 5)
    monkeypatch.setattr(mirroring, "MAX_OUTBOX_DEPTH", 10)


def seed_past_executions(ctx: Context, count: int) -> set[str]:
    """``count`` ended local executions, written straight into the store; their ids."""
    first = time.time() - count - 60
    ids = set()
    with ctx.transaction() as tx:
        for index in range(count):
            ex = execution_actions.new_execution(
                ctx,
                name=f"past {index}",
                flow_name="f",
                script="def handler(system, this):\n    pass\n",
                input_value={"index": index},
                status=Status.ENDED_SUCCESS,
                created_at=first + index,
                started_at=first + index,
                ended_at=first + index + 0.5,
            )
            executions.insert(tx.conn, ex)
            ids.add(ex.id)
    return ids


def test_each_ack_that_makes_room_lets_the_next_page_in_without_a_housekeeping_round(
    no_housekeeping_rounds: None, link: Link, own_key: Any, remote_key: Any
) -> None:
    """With pages of 5, an outbox cap of 10 and no periodic round, only acks move it on."""
    past = seed_past_executions(link.client.app.state.ctx, PAST)
    create_controlling(link.api, own_key, remote_key, "boss")
    link.api.ok("PATCH", "/sync_config/boss", json={"send_all_executions": True})

    def is_complete() -> bool:
        return bool(link.api.ok("GET", "/sync_config/boss/status")["backfill"]["is_complete"])

    # The other side's part: poll, acking what came. The last full page is known to be the
    # last only once a step finds nothing after it, which the ack of that page wakes.
    mirrored: list[str] = []
    acked = 0

    def step() -> bool:
        """One poll of the other side, acking what came; true once all is mirrored."""
        nonlocal acked
        body, headers = link.seal(receiver="boss", hello=CONTROLLED_HELLO, ack=acked)
        answer = link.post(body, headers, name="boss")
        assert answer.status_code == 200, answer.text
        messages = envelope.decode(answer.content).messages
        assert len(messages) <= mirroring.MAX_OUTBOX_DEPTH + mirroring.PAGE
        for message in messages:
            if message.seq > acked:
                assert message.type == "execution.mirror", message
                mirrored.append(message.body["execution_id"])
                acked = message.seq
        return len(mirrored) >= PAST and is_complete()

    wait_until(step, f"all {PAST} past executions to be mirrored", 15, poll_s=0.01)

    assert sorted(mirrored) == sorted(past), "every past execution mirrored exactly once"
    status = link.api.ok("GET", "/sync_config/boss/status")
    assert status["backfill"] == {"enabled": True, "total": PAST, "done": PAST, "is_complete": True}
