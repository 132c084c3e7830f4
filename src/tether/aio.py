"""Stopping background tasks and waiting with a timeout, without losing a cancellation.

Two asyncio idioms lose the cancellation of the task that uses them, which leaves a loop
running that was told to stop (a server's shutdown then waits for it forever):

- awaiting a task one has just cancelled inside ``suppress(CancelledError)``: if the
  awaiting task is itself cancelled meanwhile, its own CancelledError is suppressed too;
- ``asyncio.wait_for`` on Python 3.11, which returns the result when the inner awaitable
  finished in the same loop iteration as the cancellation (python/cpython#86296, fixed in
  3.12 by building it on ``asyncio.timeout``).

The engine's long-running tasks use these two functions instead.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


async def stop_tasks(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel ``tasks`` (None entries are skipped) and wait until every one has ended.

    What they ended with is retrieved and dropped (each task's own edge records its
    failures). A cancellation of the caller while it waits propagates, as it must.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    if not running:
        return
    await asyncio.wait(running)
    for task in running:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("task %s ended with %r while stopping", task.get_name(), exc)


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set; False when ``timeout_s`` passed first."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
