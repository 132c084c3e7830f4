"""A Batcher writes a lone item at once, and what comes while a call is under way together in
the next call, at most max_batch at a time; each caller gets its own item's outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from tether.runner.batching import Batcher


class Store:
    """A blocking write that records each call; the first call waits until released."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.first_call_started = threading.Event()
        self.release_first_call = threading.Event()
        self._fail_on = fail_on

    def write(self, items: Sequence[str]) -> list[Exception | None]:
        self.calls.append(list(items))
        if len(self.calls) == 1:
            self.first_call_started.set()
            assert self.release_first_call.wait(5)
        if self._fail_on == "call":
            raise OSError("the store is gone")
        return [ValueError(item) if item == self._fail_on else None for item in items]


async def _write_while_first_call_holds(
    store: Store, later: list[str], max_batch: int
) -> list[Exception | None]:
    batcher = Batcher(store.write, max_batch)
    first = asyncio.create_task(batcher.write("first"))
    assert await asyncio.to_thread(store.first_call_started.wait, 5)
    rest = [asyncio.create_task(batcher.write(item)) for item in later]
    await asyncio.sleep(0.05)  # every later write is waiting
    store.release_first_call.set()
    return list(await asyncio.gather(first, *rest))


def test_what_comes_during_a_call_is_written_together_next() -> None:
    store = Store()
    later = [f"item {n}" for n in range(25)]
    outcomes = asyncio.run(_write_while_first_call_holds(store, later, max_batch=10))
    assert store.calls == [["first"], later[:10], later[10:20], later[20:]]
    assert outcomes == [None] * 26


def test_a_lone_write_is_not_held_back() -> None:
    async def main() -> list[Exception | None]:
        store = Store()
        store.release_first_call.set()
        batcher = Batcher(store.write, 10)
        outcomes = [await batcher.write("alone"), await batcher.write("alone again")]
        assert store.calls == [["alone"], ["alone again"]]
        return outcomes

    assert asyncio.run(main()) == [None, None]


def test_each_caller_gets_its_own_items_outcome() -> None:
    store = Store(fail_on="item 1")
    later = ["item 0", "item 1", "item 2"]
    outcomes = asyncio.run(_write_while_first_call_holds(store, later, max_batch=10))
    assert outcomes[0] is None and outcomes[1] is None and outcomes[3] is None
    assert isinstance(outcomes[2], ValueError)


@pytest.mark.parametrize("later", [[], ["item 0", "item 1"]])
def test_a_failed_call_is_every_items_outcome(later: list[str]) -> None:
    store = Store(fail_on="call")
    outcomes = asyncio.run(_write_while_first_call_holds(store, later, max_batch=10))
    assert len(outcomes) == 1 + len(later)
    assert all(isinstance(outcome, OSError) for outcome in outcomes)
