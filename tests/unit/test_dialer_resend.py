"""When a dialer asks the listener for every unacked message again (hello.resend)."""

from __future__ import annotations

from tether.link import dialer

SPEAKS_2 = {"workspace": "edge", "role": "controlled", "protocols": [1, 2]}
SPEAKS_1 = {"workspace": "edge", "role": "controlled", "protocols": [1]}


def test_nothing_is_said_to_a_listener_of_protocol_1() -> None:
    flight = dialer.InFlight()
    assert flight.resend() == (None, 0), "before any answer the listener's protocols are unknown"
    flight.answered(0, SPEAKS_1)
    flight.lost()
    assert flight.resend()[0] is None


def test_a_new_dialer_asks_once_then_only_after_a_loss() -> None:
    flight = dialer.InFlight()
    flight.answered(0, SPEAKS_2)
    resend, asked = flight.resend()
    assert resend is True, "a dialer that just started knows nothing of earlier answers"
    flight.answered(asked, SPEAKS_2)
    assert flight.resend() == (False, 0)
    flight.lost()
    assert flight.resend()[0] is True


def test_only_an_answer_to_a_request_that_asked_after_the_latest_loss_clears_it() -> None:
    flight = dialer.InFlight()
    flight.answered(0, SPEAKS_2)
    _, first = flight.resend()
    flight.lost()  # lost while the request that asked was on its way
    flight.answered(first, SPEAKS_2)
    resend, second = flight.resend()
    assert resend is True and second != first
    flight.answered(second, SPEAKS_2)
    assert flight.resend() == (False, 0)


def test_a_sender_goes_to_ask_for_a_resend_even_with_nothing_to_send() -> None:
    """Else a resend wanted after a gap waits for the held poll's hold to run out."""
    flight = dialer.InFlight()
    flight.answered(0, SPEAKS_2)

    def look(floor: int) -> tuple[object, list[object]]:
        return type("State", (), {"applied_seq": 0})(), []

    assert flight.choose(1, is_poll_at_once=True, is_sending=True, look=look) is not None
    _, asked = flight.resend()
    flight.answered(asked, SPEAKS_2)
    assert flight.choose(2, is_poll_at_once=True, is_sending=True, look=look) is None
