"""Applying a link's messages never deadlocks with the runner writing the same executions."""

from __future__ import annotations

import uuid

from tests.support.envelopes import Link
from tether.link.envelope import Message

SLOW_ENOUGH = (
    "import time\ndef handler(system, this):\n    this.log('started')\n    time.sleep(0.02)\n"
)


def test_starts_followed_at_once_by_cancels_are_all_applied(link: Link) -> None:
    """The runner locks an execution then the link state; applying locks in the same order."""
    seq = 0
    ids = []
    for _ in range(12):
        execution_id = str(uuid.uuid4())
        ids.append(execution_id)
        seq += 1
        start = link.start_message(seq, execution_id, SLOW_ENOUGH)
        assert link.post(*link.seal(start)).status_code == 200
        seq += 1
        cancel = Message(seq=seq, type="execution.cancel", body={"execution_id": execution_id})
        answer = link.post(*link.seal(cancel))
        assert answer.status_code == 200, answer.text
    assert link.applied_seq() == seq
    link.settle()
    received = {r["remote_execution_id"]: r for r in link.received()}
    assert set(received) == set(ids)
    assert all(r["status"] in ("ENDED_CANCELLED", "ENDED_SUCCESS") for r in received.values())
