"""What must cross a link after an execution changes: messages appended to outboxes.

Called inside the use case's transaction (transactional outbox); never sends anything itself.
"""

from __future__ import annotations

from typing import Any

from tether import errors
from tether.actions import events
from tether.actions.context import Context, Transaction
from tether.store import executions, outbox, sync_configs
from tether.store.executions import Execution

START = "execution.start"
UPDATE = "execution.update"
CANCEL = "execution.cancel"
MIRROR = "execution.mirror"
MAX_LOG_PER_UPDATE = 500


def send_start(ctx: Context, tx: Transaction, ex: Execution) -> None:
    """Ask the controlled side to create and run ``ex``."""
    body = {
        "execution_id": ex.id,
        "name": ex.name,
        "flow_name": ex.flow_name,
        "script": ex.script,
        "input_value": ex.input_value,
        "max_runtime_s": ex.max_runtime_s,
    }
    _append(ctx, tx, ex.sync_config or "", START, body)


def withdraw_start(ctx: Context, tx: Transaction, ex: Execution) -> bool:
    """Withdraw the start of ``ex`` if it may not have reached the other side; whether it was.

    A start still unacknowledged becomes a cancel under its own sequence number (a gap
    would stall the link), and a cancel follows it in case it was applied meanwhile.
    """
    withdrawn = outbox.rewrite_pending(
        tx.conn, ex.sync_config or "", START, ex.id, (CANCEL, {"execution_id": ex.id})
    )
    if withdrawn:
        send_cancel(ctx, tx, ex)
    return withdrawn


def send_never_started(ctx: Context, tx: Transaction, name: str, execution_id: str) -> None:
    """Tell the controlling side that its execution ``execution_id`` was cancelled here
    before it existed (its start was withdrawn)."""
    body: dict[str, Any] = {
        "execution_id": execution_id,
        "remote_id": None,
        "status": executions.ENDED_CANCELLED,
        "output_value": {},
        "message": "cancelled before it started",
        "started_at": None,
        "ended_at": ctx.now(),
        "log_offset": 0,
        "log": [],
    }
    _append(ctx, tx, name, UPDATE, body)


def send_cancel(ctx: Context, tx: Transaction, ex: Execution) -> None:
    """Ask the controlled side to cancel ``ex``."""
    _append(ctx, tx, ex.sync_config or "", CANCEL, {"execution_id": ex.id})


def after_change(ctx: Context, tx: Transaction, ex: Execution) -> None:
    """Queue what the change of ``ex`` means for links: updates back, and mirrors."""
    if ex.is_ended:
        tx.publish(events.ENDED, ex.id)
    if ex.origin == executions.RECEIVED and ex.sync_config:
        _send_update(ctx, tx, ex)
    elif ex.origin == executions.LOCAL:
        for name in sync_configs.mirroring_names(tx.conn):
            if name != ex.sync_config:
                append_mirror(ctx, tx, name, ex)


def append_mirror(ctx: Context, tx: Transaction, name: str, ex: Execution) -> None:
    """Queue a read-only copy of ``ex`` for sync config ``name``."""
    _append(ctx, tx, name, MIRROR, mirror_body(ex))


def mirror_body(ex: Execution) -> dict[str, Any]:
    """The read-only copy of ``ex`` that a mirror message carries."""
    return {
        "execution_id": ex.id,
        "name": ex.name,
        "flow_name": ex.flow_name,
        "status": ex.status,
        "script": ex.script,
        "input_value": ex.input_value,
        "output_value": ex.output_value,
        "message": ex.message,
        "created_at": ex.created_at,
        "started_at": ex.started_at,
        "ended_at": ex.ended_at,
    }


def _send_update(ctx: Context, tx: Transaction, ex: Execution) -> None:
    try:
        _send_updates(ctx, tx, ex)
    except errors.SyncConfigNotFound:
        return  # the link was deleted (which ended the execution): nobody to tell


def _send_updates(ctx: Context, tx: Transaction, ex: Execution) -> None:
    # Log entries travel from the offset the previous update stopped at, in chunks; the
    # other side applies them by sequence number, so a repeated entry is ignored there.
    offset = ex.log_synced
    while True:
        entries = (
            executions.read_log(tx.conn, ex.id, offset, MAX_LOG_PER_UPDATE)
            if offset < ex.log_count
            else []
        )
        # The other side takes no log entries once it has an end: of an ended execution
        # with more entries than one update carries, the ones before the last say RUNNING.
        is_ending = ex.is_ended and len(entries) < MAX_LOG_PER_UPDATE
        body = {
            "execution_id": ex.remote_execution_id,
            "remote_id": ex.id,
            "status": ex.status if is_ending or not ex.is_ended else executions.RUNNING,
            "output_value": ex.output_value,
            "message": ex.message,
            "started_at": ex.started_at,
            "ended_at": ex.ended_at if is_ending else None,
            "log_offset": offset,
            "log": [[e.time, e.message, e.fields] for e in entries],
        }
        _append(ctx, tx, ex.sync_config or "", UPDATE, body)
        offset += len(entries)
        if len(entries) < MAX_LOG_PER_UPDATE:
            break
    if offset != ex.log_synced:
        executions.set_columns(tx.conn, ex.id, log_synced=offset)


def _append(ctx: Context, tx: Transaction, name: str, type_: str, body: dict[str, Any]) -> None:
    outbox.append(tx.conn, name, type_, body, ctx.now())
    tx.publish(events.OUTBOX, name)
