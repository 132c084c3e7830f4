"""Applying what arrives over a link: messages in sequence order, exactly once, with the cursor.

One envelope is one transaction: its messages, the inbox cursor, the ack and the nonce.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from tether import errors, limits
from tether.actions import executions as execution_actions
from tether.actions import outgoing, users
from tether.actions.context import Context, Transaction
from tether.messages import Message
from tether.statuses import ENDED, STATUSES, Event, Status
from tether.store import database, dialer_leases, executions, outbox, sync_configs
from tether.store.executions import LogEntry
from tether.store.sync_configs import SyncConfig

log = logging.getLogger(__name__)
MAX_NAME_CHARS = execution_actions.MAX_NAME_CHARS
# Log entries kept per execution that runs in the linked workspace: room for a 100 MB log of
# 50-byte lines, and a bound on what the other side can make this store hold for one.
MAX_LOG_ENTRIES = 2_000_000
LOG_CUT = "[log cut: the linked workspace sent more than {limit} entries; the rest were dropped]"


@dataclass(frozen=True)
class Applied:
    """What applying an envelope left: the inbox cursor, and whether this side's outbox for
    the link holds messages (None when not asked)."""

    cursor: int
    has_pending: bool | None = None
    repeats: int = 0  # messages that were applied before (the transport delivered them again)


class Replay(Exception):
    """The envelope's nonce was seen before."""


class WrongSender(Exception):
    """The envelope names another sender than the one this link is bound to."""


class _Refused(Exception):
    """A message's body could not be applied; the envelope is applied again, carefully."""


def apply_envelope(
    ctx: Context,
    config: SyncConfig,
    messages: Sequence[Message],
    ack: int,
    nonce: str | None,
    state_values: dict[str, Any] | None = None,
    *,
    is_pending_asked: bool = False,
    pending_after: int = 0,
    sender: str | None = None,
    dialer: tuple[str, int] | None = None,
) -> Applied:
    """Apply new messages in order, advance the cursor, drop acked outbox rows.

    ``state_values``: more link-state columns to write in the same transaction (the link's
    health after a good exchange). ``is_pending_asked``: also look, in the same
    transaction, whether messages numbered above ``pending_after`` wait in this side's
    outbox (a listener holding a poll; lower ones are on their way in other answers).
    ``sender``: the other side's sync config name as a request states it; the first one
    heard binds the link, and another is refused. ``dialer``: (process id, epoch) of the
    dialer lease the answer was fetched under; when another server took it over since,
    nothing is applied.

    Raises:
        DialerLeaseLost: ``dialer`` no longer holds the link's dialer lease.
        Replay: ``nonce`` was already used on this sync config (nothing is changed).
        WrongSender: ``sender`` is not the name the link is bound to (nothing is changed).
    """
    # Almost every envelope applies whole: first without a savepoint per message (four SQL
    # statements each, measured as 40 % of applying an update). A message that cannot be
    # applied rolls all of it back, and the envelope is applied again message by message,
    # each in a savepoint, skipping the ones that fail.
    pending = pending_after if is_pending_asked else None
    try:
        return _apply(
            ctx, config, messages, ack, nonce, state_values, pending, sender, dialer, False
        )
    except _Refused:
        return _apply(
            ctx, config, messages, ack, nonce, state_values, pending, sender, dialer, True
        )


def _apply(
    ctx: Context,
    config: SyncConfig,
    messages: Sequence[Message],
    ack: int,
    nonce: str | None,
    state_values: dict[str, Any] | None,
    pending_after: int | None,
    sender: str | None,
    dialer: tuple[str, int] | None,
    is_careful: bool,
) -> Applied:
    try:
        with ctx.transaction() as tx:
            if nonce is not None and not outbox.remember_nonce(
                tx.conn, config.name, nonce, ctx.now()
            ):
                raise Replay()
            sync_configs.lock_inbox(tx.conn, config.name)
            if dialer is not None and not dialer_leases.holds(tx.conn, config.name, *dialer):
                raise errors.DialerLeaseLost(name=config.name, epoch=dialer[1])
            state = sync_configs.get_state(tx.conn, config.name)
            values: dict[str, Any] = dict(state_values or {})
            if sender is not None:
                values.update(_bound_sender(config.name, state.remote_name, sender))
            applied = state.applied_seq
            repeats = 0
            for message in messages:
                if message.seq <= applied:
                    repeats += 1
                    continue  # delivered before: at-least-once transport, exactly-once effect
                if message.seq != applied + 1:
                    break  # a gap: wait for the missing message rather than apply out of order
                _apply_one(ctx, tx, config, message, is_careful=is_careful)
                applied = message.seq
            if applied != state.applied_seq:
                values["applied_seq"] = applied
            if ack > state.acked_seq:
                outbox.acknowledge(tx.conn, config.name, min(ack, state.next_seq - 1))
                values["acked_seq"] = min(ack, state.next_seq - 1)
                if state.is_backfilling:
                    tx.publish(Event.ACKED, config.name)  # room for the backfill's next page
            if values:  # an empty renewal of a long-poll changes nothing here
                sync_configs.update_state(tx.conn, config.name, **values)
            is_pending = (
                None
                if pending_after is None
                else outbox.has_after(tx.conn, config.name, pending_after)
            )
            return Applied(applied, is_pending, repeats)
    except errors.StoreConflict as exc:
        if exc.is_unique_violation and nonce is not None:
            raise Replay() from exc  # the same nonce raced in from a concurrent request
        raise


def _bound_sender(name: str, bound: str | None, sender: str) -> dict[str, Any]:
    """The link-state change that binds ``sender`` (none once bound to it).

    Raises:
        WrongSender: the link is bound to another name.
    """
    if bound is None:
        return {"remote_name": sender}
    if bound != sender:
        raise WrongSender(f"sync config {name!r} is bound to sender {bound!r}, not {sender!r}")
    return {}


def _apply_one(
    ctx: Context, tx: Transaction, config: SyncConfig, message: Message, *, is_careful: bool
) -> None:
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
        with database.savepoint(tx.conn, is_used=is_careful):
            handler(ctx, tx, config.name, message.body)
    except (KeyError, TypeError, ValueError, errors.TetherError) as exc:
        if isinstance(exc, errors.StoreUnavailable):
            raise  # the store, not the body, failed: apply nothing, the sender sends it again
        if not is_careful:
            raise _Refused() from exc
        # A malformed body must not wedge the link: record it and go on with the next.
        log.warning(
            "sync config %s: could not apply %s #%d: %r",
            config.name,
            message.type,
            message.seq,
            exc,
        )


def _execution_id(value: Any) -> str:
    """An execution id from the other side: a UUID in its canonical text form."""
    if not isinstance(value, str) or len(value) != 36 or str(uuid.UUID(value)) != value:
        raise ValueError(f"{value!r} is not an execution id")
    return value


def _text(
    value: Any, field: str, *, max_chars: int | None = None, is_optional: bool = False
) -> Any:
    """A text field from the other side: a string without NUL characters, not too long."""
    if value is None and is_optional:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError(f"{field} must be text without NUL characters")
    if max_chars is not None and len(value) > max_chars:
        raise ValueError(f"{field} is longer than {max_chars} characters")
    return value


def _words(value: Any, field: str) -> str | None:
    """Free text a script produced (a message, a log line): NUL characters are replaced, not refused.

    Refusing would drop the status that travels with it; a NUL cannot be stored in PostgreSQL.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text")
    return value.replace("\x00", "\ufffd")


def _object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object field (inputs, outputs); absent means empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be a JSON object")
    return value


def _seconds(value: Any, field: str, *, is_positive: bool = False) -> float | None:
    """A time or a duration in seconds, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field} must be a number of seconds")
    if is_positive and value <= 0:
        raise ValueError(f"{field} must be positive")
    return float(value)


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise ValueError(f"unknown status {value!r}")
    return cast(str, value)


def _apply_start(ctx: Context, tx: Transaction, name: str, body: dict[str, Any]) -> None:
    remote_id = _execution_id(body["execution_id"])
    if executions.find_linked(tx.conn, name, remote_id, executions.RECEIVED) is not None:
        return  # a second start with the same id does nothing
    flow_name = _text(
        body.get("flow_name"), "flow_name", max_chars=MAX_NAME_CHARS, is_optional=True
    )
    given_name = _text(body.get("name"), "name", is_optional=True)
    # Read again inside the inbox lock: the policy an admin saved last is the one that holds.
    config = sync_configs.get(tx.conn, name)
    ex = execution_actions.new_execution(
        ctx,
        name=given_name or flow_name or "remote execution",
        flow_name=flow_name,
        script=_text(body["script"], "script"),
        input_value=_object(body.get("input_value"), "input_value"),
        status=Status.QUEUED,
        origin=executions.RECEIVED,
        sync_config=name,
        remote_execution_id=remote_id,
        max_runtime_s=_seconds(body.get("max_runtime_s"), "max_runtime_s", is_positive=True),
        owner=config.run_as or users.LINK_ACCOUNT,
    )
    refusal = refusal_of(config, ex.script_sha256)
    if refusal is not None:
        # Never queued, so never run; the update back ends the child on the other side too.
        ex = replace(ex, status=Status.ENDED_ERROR, message=refusal, ended_at=ctx.now())
        executions.insert(tx.conn, ex)
        log.warning("sync config %s: refused execution %s: %s", name, remote_id, refusal)
        outgoing.after_change(ctx, tx, ex)
        return
    executions.insert(tx.conn, ex)
    tx.publish(Event.QUEUED)
    # No update back yet: the controlling side hears of it when it runs or ends.


def refusal_of(config: SyncConfig, script_sha256: str) -> str | None:
    """Why ``config`` refuses to run a script with digest ``script_sha256``, or None."""
    if config.accepted_scripts is None or script_sha256 in config.accepted_scripts:
        return None
    return (
        f"sync config '{config.name}' of the controlled workspace refused to run this "
        f"execution: rule accepted_scripts: the script's SHA-256 {script_sha256} is not in its "
        "list; an organization admin of that workspace can add the digest to accepted_scripts"
    )


def _apply_update(ctx: Context, tx: Transaction, name: str, body: dict[str, Any]) -> None:
    ex = executions.find(tx.conn, _execution_id(body["execution_id"]))
    if ex is None or ex.sync_config != name or not ex.is_remote_child:
        raise ValueError(f"no execution {body['execution_id']} was sent over this link")
    # None: the execution never existed over there (its start was withdrawn).
    remote_id = None if body["remote_id"] is None else _execution_id(body["remote_id"])
    status = _status(body["status"])
    if ex.is_ended:
        # An ended execution never changes again, its log included: the update that ended
        # it carried the last entries. (Cancelled here first, it learns the other id still.)
        if ex.remote_execution_id is None and remote_id is not None:
            executions.set_columns(tx.conn, ex.id, remote_execution_id=remote_id)
        return
    values: dict[str, Any] = {
        "remote_execution_id": remote_id or ex.remote_execution_id,
        "output_value": _object(body.get("output_value"), "output_value"),
        "message": _words(body.get("message"), "message"),
        "started_at": _seconds(body.get("started_at"), "started_at"),
        "ended_at": _seconds(body.get("ended_at"), "ended_at"),
    }
    if status != ex.status and executions.is_forward(ex.status, status):
        values["status"] = status
    executions.set_columns(tx.conn, ex.id, **values)
    # Applied message by message (after a failure, see apply_envelope), each message is in a
    # savepoint: its log entries then get one of their own, so that bad ones lose no end.
    is_careful = tx.conn.in_nested_transaction()
    try:
        with database.savepoint(tx.conn, is_used=is_careful):
            _append_remote_log(tx, ex.id, ex.log_count, body.get("log_offset", 0), body.get("log"))
    except (TypeError, ValueError, errors.ValueNotStorable) as exc:
        if not is_careful:
            raise _Refused() from exc
        # The status and outputs above still count: a bad log entry must not lose an end.
        log.warning("execution %s: log entries from the other side were refused: %r", ex.id, exc)
    outgoing.after_change(ctx, tx, executions.get(tx.conn, ex.id))


def _append_remote_log(
    tx: Transaction, execution_id: str, have: int, offset: Any, lines: Any
) -> None:
    # Entries are numbered by the sender; those already here are skipped, so repeats are harmless.
    if lines is None or have >= MAX_LOG_ENTRIES:
        return  # past the cap, the last entry says that the log was cut
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"log_offset {offset!r} is not a count of entries")
    if not isinstance(lines, list):
        raise ValueError("log entries must come as a list")
    if offset > have:
        raise ValueError(f"log entries from {offset} arrived but only {have} are here")
    fresh = [
        LogEntry(
            seq=offset + i,
            time=_seconds(t, "log time") or 0.0,
            # Cut as this side cuts its own: a peer (or an older version) may send more.
            message=limits.cut_text(_words(m, "log message") or "", limits.MAX_LOG_ENTRY_BYTES),
            fields=_object(f, "log fields"),
        )
        for i, (t, m, f) in enumerate(lines)
        if offset + i >= have
    ]
    room = MAX_LOG_ENTRIES - have
    if len(fresh) > room:
        cut = LogEntry(
            room - 1 + have, fresh[room - 1].time, LOG_CUT.format(limit=MAX_LOG_ENTRIES), {}
        )
        fresh = [*fresh[: room - 1], cut]
    if fresh:
        executions.append_log(tx.conn, execution_id, have, fresh)


def _apply_cancel(ctx: Context, tx: Transaction, name: str, body: dict[str, Any]) -> None:
    execution_id = _execution_id(body["execution_id"])
    ex = executions.find_linked(tx.conn, name, execution_id, executions.RECEIVED)
    if ex is not None:
        execution_actions.cancel_tree(ctx, tx, ex)
    else:
        # Its start was withdrawn before it got here: the controlling side waits for an end.
        outgoing.send_never_started(ctx, tx, name, execution_id)


def _apply_mirror(ctx: Context, tx: Transaction, name: str, body: dict[str, Any]) -> None:
    remote_id = _execution_id(body["execution_id"])
    values = {
        "name": _text(body.get("name"), "name", is_optional=True) or "mirrored execution",
        "flow_name": _text(
            body.get("flow_name"), "flow_name", max_chars=MAX_NAME_CHARS, is_optional=True
        ),
        "status": _status(body["status"]),
        "input_value": _object(body.get("input_value"), "input_value"),
        "output_value": _object(body.get("output_value"), "output_value"),
        "message": _words(body.get("message"), "message"),
        "started_at": _seconds(body.get("started_at"), "started_at"),
        "ended_at": _seconds(body.get("ended_at"), "ended_at"),
    }
    values["name"] = values["name"][:MAX_NAME_CHARS]
    existing = executions.find_linked(tx.conn, name, remote_id, executions.MIRROR)
    if existing is None:
        ex = execution_actions.new_execution(
            ctx,
            script=_text(body.get("script") or "", "script"),
            origin=executions.MIRROR,
            sync_config=name,
            remote_execution_id=remote_id,
            created_at=_seconds(body.get("created_at"), "created_at") or ctx.now(),
            **values,
        )
        executions.insert(tx.conn, ex)
    elif not existing.is_ended:
        executions.set_columns(tx.conn, existing.id, **values)
        if values["status"] in ENDED:
            tx.publish(Event.ENDED, existing.id)
