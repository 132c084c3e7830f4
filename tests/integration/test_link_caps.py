"""Caps against a hostile but authenticated peer: held long-polls per link, and log entries
per execution (none once it has ended)."""

from __future__ import annotations

import threading
import time

from tests.support.envelopes import HQ_HELLO, Link
from tether.link import endpoint

HOLD_S = 3.0
HELD_POLLS_CAP = 4  # documented in docs/protocol.md


def test_a_peer_could_pile_up_held_long_polls_without_limit(link: Link) -> None:
    """Two more polls than the cap at once: the oldest two are answered at once, not held."""
    count = HELD_POLLS_CAP + 2
    durations: list[float] = []

    def poll(index: int) -> None:
        time.sleep(0.1 * index)  # one after another, so that "oldest" means something
        started = time.monotonic()
        answer = link.post(*link.seal(hello={**HQ_HELLO, "poll_s": HOLD_S}))
        assert answer.status_code == 200, answer.text
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(durations) == count
    quick = [d for d in durations if d < HOLD_S * endpoint.HOLD_JITTER - 1]
    assert len(quick) == 2, sorted(durations)
    assert endpoint.MAX_HELD_POLLS == HELD_POLLS_CAP
