"""Stores driven below the API: contexts on one migrated store, as separate workers open
them, and rows added directly (a link, executions in a given state)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from tether.actions import executions as execution_actions
from tether.actions.context import Context
from tether.actions.events import Events
from tether.link import configs
from tether.statuses import Status
from tether.store import executions, sync_configs
from tether.store.database import Database


@contextlib.contextmanager
def open_contexts(database_url: str) -> Iterator[Callable[[], Context]]:
    """Opens contexts on one migrated store, each with its own engine (as separate workers)."""
    opened: list[Database] = []

    def open_() -> Context:
        db = Database(database_url)
        opened.append(db)
        return Context(db=db, events=Events(), workspace_name="test")

    open_().db.migrate()
    try:
        yield open_
    finally:
        for db in opened:
            db.dispose()


def add_link(ctx: Context, max_running: int | None = None) -> None:
    """The controlled sync config 'hq' (received executions come over it)."""
    values: dict[str, Any] = {"name": "hq", "role": sync_configs.CONTROLLED}
    if max_running is not None:
        values["max_running"] = max_running
    configs.create(ctx, values)


def add_executions(
    ctx: Context, count: int, origin: str, status: Status = Status.QUEUED
) -> list[str]:
    """``count`` executions of ``origin`` in ``status``, received ones over 'hq'; their ids."""
    ids = []
    with ctx.db.begin() as conn:
        for index in range(count):
            ex = execution_actions.new_execution(
                ctx,
                name=f"{origin} {index}",
                flow_name=None,
                script="def handler(system, this):\n    pass\n",
                input_value={},
                status=status,
                origin=origin,
                sync_config="hq" if origin == executions.RECEIVED else None,
                remote_execution_id=str(index) if origin == executions.RECEIVED else None,
                created_at=time.time() + index / 1000,
            )
            executions.insert(conn, ex)
            ids.append(ex.id)
    return ids
