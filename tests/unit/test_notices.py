"""The payloads of cross-process wake-ups: split under PostgreSQL's size limit, read back
whole, and marked with the sender's origin."""

from __future__ import annotations

from tether.store import notices


def test_events_survive_the_round_trip_through_a_payload() -> None:
    events = [("ended", "id-1"), ("outbox", "edge"), ("queued", "")]
    [payload] = list(notices._payloads("me", [f"{k}\t{v}" for k, v in events]))
    assert notices.parse(payload) == ("me", events)


def test_many_events_are_split_into_payloads_under_the_limit() -> None:
    lines = [f"ended\t{index:036d}" for index in range(1000)]
    payloads = list(notices._payloads("origin", lines))
    assert len(payloads) > 1
    assert all(len(p.encode()) <= notices.MAX_PAYLOAD_BYTES for p in payloads)
    parsed = [notices.parse(p) for p in payloads]
    assert {origin for origin, _ in parsed} == {"origin"}
    assert [f"{k}\t{v}" for _, events in parsed for k, v in events] == lines
