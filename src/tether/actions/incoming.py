"""Applying what arrives over a link: messages in sequence order, exactly once, with the cursor.

One envelope is one transaction: its messages, the inbox cursor, the ack and the nonce.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tether import errors
from tether.actions import events, outgoing
from tether.actions import executions as execution_actions
from tether.actions.context import Context, Transaction
from tether.store import database, executions, outbox, sync_configs
from tether.store.executions import LogEntry
from tether.store.sync_configs import SyncConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    seq: int
    type: str
    body: dict[str, Any]


class Replay(Exception):
    """The envelope's nonce was seen before."""


def apply_envelope(
    ctx: Context,
    config: SyncConfig,
    messages: Sequence[Inbound],
    ack: int,
    nonce: str | None,
) -> int:
    """Apply new messages in order, advance the cursor, drop acked outbox rows; return the cursor.

    Raises:
        Replay: ``nonce`` was already used on this sync config (nothing is changed).
    """
    try:
        with ctx.transaction() as tx:
            if nonce is not None and not outbox.remember_nonce(
                tx.conn, config.name, nonce, ctx.now()
            ):
                raise Replay()
            state = sync_configs.get_state(tx.conn, config.name, for_update=True)
            applied = state.applied_seq
            for message in messages:
                if message.seq <= applied:
                    continue  # delivered before: at-least-once transport, exactly-once effect
                if message.seq != applied + 1:
                    break  # a gap: wait for the missing message rather than apply out of order
                _apply_one(ctx, tx, config, message)
                applied = message.seq
            values: dict[str, Any] = {"applied_seq": applied}
            if ack > state.acked_seq:
                outbox.acknowledge(tx.conn, config.name, min(ack, state.next_seq - 1))
                values["acked_seq"] = min(ack, state.next_seq - 1)
            sync_configs.update_state(tx.conn, config.name, **values)
            return applied
    except sa.exc.IntegrityError as exc:
        if database.is_unique_violation(exc) and nonce is not None:
            raise Replay() from exc  # the same nonce raced in from a concurrent request
        raise


def _apply_one(ctx: Context, tx: Transaction, config: SyncConfig, message: Inbound) -> None:
    handlers = {
        outgoing.START: (sync_configs.CONTROLLED, _apply_start),
        outgoing.UPDATE: (sync_configs.CONTROLLING, _apply_update),
        outgoing.CANCEL: (sync_configs.CONTROLLED, _apply_cancel),
        outgoing.MIRROR: (sync_configs.CONTROLLED, _apply_mirror),
    }
    role, handler = handlers[message.type]
    if config.role != role:
        # Signed and sequenced, so it is consumed; but a wrong-role message never acts.
        log.warning(
            "sync config %s: refused %s #%d: this side's role is %s",
            config.name,
            message.type,
            message.seq,
            config.role,
        )
        return
    try:
        with tx.conn.begin_nested():
            handler(ctx, tx, config.name, message.body)
    except (KeyError, TypeError, ValueError, errors.TetherError) as exc:
        # A malformed body must not wedge the link: record it and go on with the next.
        log.warning(
            "sync config %s: could not apply %s #%d: %r",
            config.name,
            message.type,
            message.seq,
            exc,
        )


def _apply_start(ctx: Context, tx: Transaction, name: str, body: dict[str, Any]) -> None:
    remote_id = str(body["execution_id"])
    if executions.find_linked(tx.conn, name, remote_id, executions.RECEIVED) is not None:
        return  # a second start with the same id does nothing
    script = body["script"]
    if not isinstance(script, str) or not isinstance(body.get("input_value") or {}, dict):
        raise ValueError("execution.start needs a script text and an input_value object")
    ex = execution_actions.new_execution(
        ctx,
        name=str(body.get("name") or body.get("flow_name") or "remote execution"),
        flow_name=body.get("flow_name"),
        script=script,
        input_value=body.get("input_value") or {},
        status=executions.QUEUED,
        origin=executions.RECEIVED,
        sync_config=name,
        remote_execution_id=remote_id,
        max_runtime_s=body.get("max_runtime_s"),
    )
    executions.insert(tx.conn, ex)
    tx.publish(events.QUEUED)
    outgoing.after_change(ctx, tx, ex)


def _apply_update(ctx: Context, tx: Transaction, name: str, body: dict[str, Any]) -> None:
    ex = executions.find(tx.conn, str(body["execution_id"]))
    if ex is None or ex.sync_config != name or not ex.is_remote_child:
        raise ValueError(f"no execution {body['execution_id']} was sent over this link")
    values: dict[str, Any] = {"remote_execution_id": str(body["remote_id"])}
    status = body["status"]
    if status != ex.status and executions.is_forward(ex.status, status):
        values["status"] = status
    if not ex.is_ended:
        values.update(
            output_value=body.get("output_value") or {},
            message=body.get("message"),
            started_at=body.get("started_at"),
            ended_at=body.get("ended_at"),
        )
    executions.set_columns(tx.conn, ex.id, **values)
    _append_remote_log(
        tx, ex.id, ex.log_count, int(body.get("log_offset", 0)), body.get("log") or []
    )
    outgoing.after_change(ctx, tx, executions.get(tx.conn, ex.id))


def _append_remote_log(
    tx: Transaction, execution_id: str, have: int, offset: int, lines: list[Any]
) -> None:
    # Entries are numbered by the sender; those already here are skipped, so repeats are harmless.
    if offset > have:
        raise ValueError(f"log entries from {offset} arrived but only {have} are here")
    fresh = [
        LogEntry(seq=offset + i, time=float(t), message=str(m), fields=dict(f))
        for i, (t, m, f) in enumerate(lines)
        if offset + i >= have
    ]
    if fresh:
        executions.append_log(tx.conn, execution_id, have, fresh)


def _apply_cancel(ctx: Context, tx: Transaction, name: str, body: dict[str, Any]) -> None:
    ex = executions.find_linked(tx.conn, name, str(body["execution_id"]), executions.RECEIVED)
    if ex is not None:
        execution_actions.cancel_tree(ctx, tx, ex)


def _apply_mirror(ctx: Context, tx: Transaction, name: str, body: dict[str, Any]) -> None:
    remote_id = str(body["execution_id"])
    values = {
        "name": str(body.get("name") or "mirrored execution"),
        "flow_name": body.get("flow_name"),
        "status": body["status"],
        "input_value": body.get("input_value") or {},
        "output_value": body.get("output_value") or {},
        "message": body.get("message"),
        "started_at": body.get("started_at"),
        "ended_at": body.get("ended_at"),
    }
    if values["status"] not in executions.STATUSES:
        raise ValueError(f"unknown status {values['status']!r}")
    existing = executions.find_linked(tx.conn, name, remote_id, executions.MIRROR)
    if existing is None:
        ex = execution_actions.new_execution(
            ctx,
            script=str(body.get("script") or ""),
            origin=executions.MIRROR,
            sync_config=name,
            remote_execution_id=remote_id,
            created_at=float(body.get("created_at") or ctx.now()),
            **values,
        )
        executions.insert(tx.conn, ex)
    elif not existing.is_ended:
        executions.set_columns(tx.conn, existing.id, **values)
    tx.publish(events.CHANGED, remote_id)
