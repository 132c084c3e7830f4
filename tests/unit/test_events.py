"""Events published from a worker thread reach the loop in order, woken once per batch, and a
listener that fails does not lose the rest of the batch."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from tether.actions.events import Events


async def _published_from_a_thread(events: Events, batch: list[tuple[str, str]]) -> None:
    thread = threading.Thread(target=events.publish_all, args=(batch,))
    thread.start()
    thread.join()
    await asyncio.sleep(0.05)  # the loop runs what the thread handed it


def test_a_batch_arrives_whole_and_in_order_with_one_wake_up() -> None:
    async def main() -> tuple[list[str], int]:
        events = Events()
        loop = asyncio.get_running_loop()
        events.bind(loop)
        seen: list[str] = []
        events.listen("cancel", seen.append)
        wake_ups = 0
        threadsafe = loop.call_soon_threadsafe

        def counted(*args: object) -> asyncio.Handle:
            nonlocal wake_ups
            wake_ups += 1
            return threadsafe(*args)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign, assignment]
        await _published_from_a_thread(events, [("cancel", str(n)) for n in range(500)])
        return seen, wake_ups

    seen, wake_ups = asyncio.run(main())
    assert seen == [str(n) for n in range(500)]
    assert wake_ups == 1


def test_a_failing_listener_loses_no_other_event(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[str]:
        events = Events()
        events.bind(asyncio.get_running_loop())
        seen: list[str] = []

        def fussy(key: str) -> None:
            if key == "2":
                raise RuntimeError("this listener fails on 2")
            seen.append(key)

        events.listen("cancel", fussy)
        with events.watch("ended", ["x"]) as watch:
            batch = [("cancel", "1"), ("cancel", "2"), ("cancel", "3"), ("ended", "x")]
            await _published_from_a_thread(events, batch)
            assert await watch.wait(0), "the watch after the failing listener fired"
        return seen

    with caplog.at_level(logging.ERROR, logger="tether.actions.events"):
        assert asyncio.run(main()) == ["1", "3"]
    assert "this listener fails on 2" in caplog.text
