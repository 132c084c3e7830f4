"""Setting use cases: named JSON values shared by flows."""

from __future__ import annotations

from tether import errors
from tether.actions.context import Context
from tether.actions.named import Named
from tether.statuses import Event
from tether.store import executions, setting_locks, settings

_SETTINGS = Named(settings.ROWS)
get, exists, put, delete = _SETTINGS.get, _SETTINGS.exists, _SETTINGS.put, _SETTINGS.delete
list_all, names = _SETTINGS.list_all, _SETTINGS.names


def try_acquire(ctx: Context, name: str, execution_id: str) -> str | None:
    """Take the lock of setting ``name`` for ``execution_id``; None when taken (or held
    already), else the id of the running execution that holds it."""
    with ctx.transaction() as tx:
        holder = setting_locks.holder(tx.conn, name)
        if holder == execution_id:
            return None
        if holder is None:
            # Another transaction may take it first: then wait as for any holder.
            return None if setting_locks.take(tx.conn, name, execution_id, ctx.now()) else ""
        found = executions.find(tx.conn, holder)
        if found is None or found.is_ended:  # its holder ended without releasing it
            setting_locks.take_over(tx.conn, name, holder, execution_id, ctx.now())
            return None
        return holder


def release(ctx: Context, name: str, execution_id: str) -> None:
    """Release the lock of setting ``name`` held by ``execution_id``."""
    with ctx.transaction() as tx:
        if not setting_locks.release(tx.conn, name, execution_id):
            raise errors.SettingLocked(name=name)
        tx.publish(Event.LOCK, name)
