"""When a dialer asks the listener for every unacked message again (hello.resend)."""

from __future__ import annotations

from typing import cast

from tether.link import dialer
from tether.messages import Message
from tether.store.sync_configs import LinkState

SPEAKS_2 = {"workspace": "edge", "role": "controlled", "protocols": [1, 2]}
SPEAKS_1 = {"workspace": "edge", "role": "controlled", "protocols": [1]}


def test_nothing_is_said_to_a_listener_of_protocol_1() -> None:
    flight = dialer.InFlight()
    assert flight.resend(1) == (None, 0), "before any answer the listener's protocols are unknown"
    flight.answered(0, SPEAKS_1)
    flight.lost()
    assert flight.resend(1)[0] is None


def test_a_new_dialer_asks_once_then_only_after_a_loss() -> None:
    flight = dialer.InFlight()
    flight.answered(0, SPEAKS_2)
    resend, asked = flight.resend(1)
    assert resend == dialer.EVERYTHING, "a dialer that just started knows nothing of answers"
    flight.answered(asked, SPEAKS_2)
    assert flight.resend(1) == (0, 0)
    flight.lost()
    assert flight.resend(1)[0] == dialer.EVERYTHING


def test_only_an_answer_to_a_request_that_asked_after_the_latest_loss_clears_it() -> None:
    flight = dialer.InFlight()
    flight.answered(0, SPEAKS_2)
    _, first = flight.resend(1)
    flight.lost()  # lost while the request that asked was on its way
    flight.answered(first, SPEAKS_2)
    resend, second = flight.resend(1)
    assert resend == dialer.EVERYTHING and second != first
    flight.answered(second, SPEAKS_2)
    assert flight.resend(1) == (0, 0)


def test_a_sender_goes_to_ask_for_a_resend_even_with_nothing_to_send() -> None:
    """Else a resend wanted after a gap waits for the held poll's hold to run out."""
    flight = dialer.InFlight()
    flight.answered(0, SPEAKS_2)

    def look(floor: int) -> tuple[LinkState, list[Message]]:
        return cast(LinkState, type("State", (), {"applied_seq": 0})()), []

    assert flight.choose(1, is_poll_at_once=True, is_sending=True, look=look) is not None
    _, asked = flight.resend(1)
    flight.answered(asked, SPEAKS_2)
    assert flight.choose(2, is_poll_at_once=True, is_sending=True, look=look) is None


def opened(flight: dialer.InFlight, *numbers: int) -> None:
    def look(floor: int) -> tuple[LinkState, list[Message]]:
        return cast(LinkState, type("State", (), {"applied_seq": 0})()), []

    for number in numbers:
        flight.choose(number, is_poll_at_once=False, is_sending=False, look=look)


def settled() -> dialer.InFlight:
    """A dialer that has talked to a listener of protocol 2 and wants nothing again."""
    flight = dialer.InFlight()
    flight.answered(0, SPEAKS_2)
    flight.answered(flight.resend(1)[1], SPEAKS_2)
    assert flight.resend(1) == (0, 0)
    return flight


def test_a_gap_waits_for_the_answer_on_its_way_that_fills_it_then_asks_for_the_rest() -> None:
    """Answer 2 (messages 4-5) overtook answer 1 (messages 1-3): asking at once would bring
    1-3 a second time; once answer 1 is applied, 4-5 (never applied) are asked for."""
    flight = settled()
    opened(flight, 1, 2)
    flight.applied(2, 0, [4, 5])
    flight.forget(2)
    assert flight.resend(1)[0] == 0, "answer 1 is on its way with 1-3"
    flight.applied(1, 3, [])
    assert flight.resend(1)[0] == dialer.EVERYTHING, "4-5 were not applied: they come again"


def test_a_gap_no_open_exchange_can_fill_asks_at_once() -> None:
    flight = settled()
    opened(flight, 1)
    flight.applied(1, 0, [4, 5])
    assert flight.resend(1)[0] == dialer.EVERYTHING


def test_a_gap_is_asked_for_when_the_exchanges_open_then_end_without_filling_it() -> None:
    flight = settled()
    opened(flight, 1, 2)
    flight.applied(2, 0, [4, 5])
    flight.forget(2)
    flight.forget(1)  # its answer carried nothing below the gap
    assert flight.resend(1)[0] == dialer.EVERYTHING


def test_one_open_exchange_at_a_time_asks_about_a_loss() -> None:
    """A request prepared ahead while the one that asked travels carries the same stale ack:
    asking too, it would bring every message that answer brings a second time (repeats, in
    bursts, of up to 6 %). It asks only once the asker is over without having made it good."""
    flight = settled()
    flight.lost()
    assert flight.resend(1)[0] == dialer.EVERYTHING
    assert flight.resend(2) == (0, 0), "exchange 1 has asked and is on its way"
    flight.forget(2)
    assert flight.resend(3) == (0, 0)
    flight.forget(1)  # its answer did not apply whole (answered() was not called)
    resend, asked = flight.resend(4)
    assert resend == dialer.EVERYTHING, "the asker ended without making it good: ask again"
    flight.answered(asked, SPEAKS_2)
    flight.forget(4)
    assert flight.resend(5) == (0, 0)


def test_a_new_loss_is_asked_about_though_an_asker_is_open() -> None:
    flight = settled()
    flight.lost()
    _, first = flight.resend(1)
    flight.lost()  # exchange 1 asked about the loss before this one
    resend, second = flight.resend(2)
    assert resend == dialer.EVERYTHING and second != first
