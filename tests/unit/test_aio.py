"""Stopping tasks and waiting on events never lose the caller's cancellation (tether.aio).

Each test runs the idiom it replaces beside it as the control: the old idiom loses the
cancellation in the same schedule, so the test shows a difference, not a tautology.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

from tether import aio

Outcome = str  # "cancelled" or "went on"


async def _ends_slowly() -> None:
    """A task that, once cancelled, takes a moment to end (as a dialer closing its client)."""
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.shield(asyncio.sleep(0.05))


async def _run(
    body: Callable[[], Awaitable[None]], cancel_after: Callable[[], Awaitable[None]]
) -> Outcome:
    """Start ``body`` as a task, cancel it once ``cancel_after`` returns; how it ended."""

    async def task_body() -> None:
        await body()
        await asyncio.sleep(0.2)  # only reached when the cancellation was lost

    task = asyncio.create_task(task_body())
    await cancel_after()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "went on"


def test_a_caller_cancelled_while_it_stops_a_task_ends_cancelled() -> None:
    async def with_stop_tasks() -> None:
        await aio.stop_tasks(asyncio.create_task(_ends_slowly()))

    async def with_suppress() -> None:  # the idiom stop_tasks replaced
        slow = asyncio.create_task(_ends_slowly())
        await asyncio.sleep(0)
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow

    async def soon() -> None:
        await asyncio.sleep(0.01)

    assert asyncio.run(_run(with_stop_tasks, soon)) == "cancelled"
    assert asyncio.run(_run(with_suppress, soon)) == "went on", "control: the old idiom loses it"


def test_stop_tasks_cancels_and_waits_for_every_task_whatever_it_ended_with() -> None:
    async def failing() -> None:
        raise ValueError("a task's own failure")

    async def main() -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(_ends_slowly()), asyncio.create_task(failing())]
        await asyncio.sleep(0.01)
        await aio.stop_tasks(None, *tasks)
        return tasks

    slow, failed = asyncio.run(main())
    assert slow.cancelled()
    assert isinstance(failed.exception(), ValueError)


def test_a_waiter_cancelled_as_its_event_is_set_ends_cancelled() -> None:
    def cancelled_as_it_is_set(wait: Callable[[asyncio.Event], Awaitable[object]]) -> Outcome:
        async def main() -> Outcome:
            event = asyncio.Event()

            async def as_it_is_set() -> None:
                await asyncio.sleep(0.01)
                event.set()
                await asyncio.sleep(0)  # the event's waiter has woken; the cancel comes next

            async def body() -> None:
                await wait(event)

            return await _run(body, as_it_is_set)

        return asyncio.run(main())

    assert cancelled_as_it_is_set(lambda event: aio.wait_event(event, 10)) == "cancelled"
    if sys.version_info < (3, 12):
        # The control: the idiom wait_event replaced loses it on 3.11 (cpython#86296).
        old_idiom = lambda event: asyncio.wait_for(event.wait(), 10)  # noqa: E731, TID251
        assert cancelled_as_it_is_set(old_idiom) == "went on"


def test_wait_event_says_whether_the_event_came_before_the_timeout() -> None:
    async def main() -> tuple[bool, bool]:
        event = asyncio.Event()
        timed_out = await aio.wait_event(event, 0.01)
        asyncio.get_running_loop().call_later(0.01, event.set)
        return timed_out, await aio.wait_event(event, 10)

    assert asyncio.run(main()) == (False, True)
