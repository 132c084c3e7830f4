"""What must cross a link after an execution changes: messages appended to outboxes.

Called inside the use case's transaction (transactional outbox); never sends anything itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether import errors, limits
from tether.actions.context import Context, Transaction
from tether.messages import dump, utf8_bytes
from tether.statuses import Event, Status
from tether.store import executions, outbox, sync_configs
from tether.store.executions import Execution

START = "execution.start"
UPDATE = "execution.update"
CANCEL = "execution.cancel"
MIRROR = "execution.mirror"
MAX_LOG_PER_UPDATE = 500
# Log entries one update carries, as JSON: with outputs (at most limits.MAX_OUTPUTS_BYTES) and
# a message (limits.MAX_EXECUTION_MESSAGE_BYTES, six bytes a character escaped) an update
# stays within MAX_BODY_BYTES.
MAX_LOG_BYTES_PER_UPDATE = 1024 * 1024
# One message's body as JSON: one envelope (4 MiB, link.envelope.MAX_BODY_BYTES, which the
# actions cannot import) carries it alone with room to spare for the envelope around it.
MAX_BODY_BYTES = 3 * 1024 * 1024


def send_start(ctx: Context, tx: Transaction, ex: Execution) -> str | None:
    """Ask the controlled side to create and run ``ex``; or, when its start cannot fit one
    envelope, send nothing and say why (for its end here: the other side never hears of it)."""
    body = {
        "execution_id": ex.id,
        "name": ex.name,
        "flow_name": ex.flow_name,
        "script": ex.script,
        "input_value": ex.input_value,
        "max_runtime_s": ex.max_runtime_s,
    }
    body_json = dump(body)
    size = utf8_bytes(body_json)
    if size > MAX_BODY_BYTES:
        return (
            f"this execution's start (its script and inputs) is {size} bytes of JSON and does "
            f"not fit one message of the link (at most {MAX_BODY_BYTES} bytes), so it was never "
            "sent: pass less data in the inputs"
        )
    _append(ctx, tx, ex.sync_config or "", START, body_json)
    return None


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
        "status": Status.ENDED_CANCELLED,
        "output_value": {},
        "message": "cancelled before it started",
        "started_at": None,
        "ended_at": ctx.now(),
        "log_offset": 0,
        "log": [],
    }
    _append(ctx, tx, name, UPDATE, dump(body))


def send_cancel(ctx: Context, tx: Transaction, ex: Execution) -> None:
    """Ask the controlled side to cancel ``ex``."""
    _append(ctx, tx, ex.sync_config or "", CANCEL, dump({"execution_id": ex.id}))


def after_change(
    ctx: Context,
    tx: Transaction,
    ex: Execution,
    mirroring: Sequence[str] | None = None,
    appended: Sequence[executions.LogEntry] = (),
) -> None:
    """Queue what the change of ``ex`` means for links: updates back, and mirrors.

    ``mirroring``: the sync configs that mirror, when the caller has read them already (a
    cancel of thousands reads them once). ``appended``: the log entries the change
    appended, the last of its log, which an update then need not read back.
    """
    if ex.is_ended:
        tx.publish(Event.ENDED, ex.id)
    if ex.origin == executions.RECEIVED and ex.sync_config:
        _send_update(ctx, tx, ex, appended)
    elif ex.origin == executions.LOCAL:
        if mirroring is None:
            mirroring = sync_configs.mirroring_names(tx.conn)
        for name in mirroring:
            if name != ex.sync_config:
                append_mirror(ctx, tx, name, ex)


def append_mirror(ctx: Context, tx: Transaction, name: str, ex: Execution) -> None:
    """Queue a read-only copy of ``ex`` for sync config ``name``."""
    body = mirror_body(ex)
    body_json = dump(body)
    size = utf8_bytes(body_json)
    if size > MAX_BODY_BYTES:
        # A copy for show only: its largest parts give way to a note rather than wedge the link.
        note = f"[cut: this copy was {size} bytes, more than one message of a link carries]"
        body.update(script=note, input_value={}, output_value={}, message=note)
        body_json = dump(body)
    _append(ctx, tx, name, MIRROR, body_json)


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


def _send_update(
    ctx: Context, tx: Transaction, ex: Execution, appended: Sequence[executions.LogEntry]
) -> None:
    try:
        _send_updates(ctx, tx, ex, appended)
    except errors.SyncConfigNotFound:
        return  # the link was deleted (which ended the execution): nobody to tell


def _send_updates(
    ctx: Context, tx: Transaction, ex: Execution, appended: Sequence[executions.LogEntry]
) -> None:
    # Log entries travel from the offset the previous update stopped at, in chunks of at most
    # MAX_LOG_PER_UPDATE entries and MAX_LOG_BYTES_PER_UPDATE bytes; the other side applies
    # them by sequence number, so a repeated entry is ignored there.
    offset = ex.log_synced
    first_appended = ex.log_count - len(appended)
    entries: Sequence[executions.LogEntry] = []  # read but not sent yet
    while True:
        if not entries and offset < ex.log_count:
            if offset >= first_appended:  # just written: no need to read them back
                start = offset - first_appended
                entries = appended[start : start + MAX_LOG_PER_UPDATE]
            else:
                # Read once, sent in as many updates as their bytes take: 500 entries of
                # 60 KB read again for each 1 MiB update made a 50 MB log take seconds longer.
                entries = executions.read_log(tx.conn, ex.id, offset, MAX_LOG_PER_UPDATE)
        count, log_json = _log_chunk(entries)
        entries = entries[count:]
        is_last_chunk = not count or offset + count >= ex.log_count
        # The other side takes no log entries once it has an end: of an ended execution
        # with more entries than one update carries, the ones before the last say RUNNING.
        is_ending = ex.is_ended and is_last_chunk
        body = {
            "execution_id": ex.remote_execution_id,
            "remote_id": ex.id,
            "status": ex.status if is_ending or not ex.is_ended else Status.RUNNING,
            "output_value": ex.output_value,
            "message": ex.message,
            "started_at": ex.started_at,
            "ended_at": ex.ended_at if is_ending else None,
            "log_offset": offset,
        }
        # Dumped once: the outbox keeps this text, and the envelope carries it as it is. The
        # log entries, dumped one by one to size the chunk, go in as they are, as "log".
        body_json = f'{dump(body)[:-1]},"log":[{log_json}]}}'
        size = utf8_bytes(body_json)
        if size > MAX_BODY_BYTES:
            ex = _end_unsendable(ctx, tx, ex, size)
            _append(ctx, tx, ex.sync_config or "", UPDATE, dump(_unsendable_update(ex, offset)))
            offset = ex.log_count
            break
        _append(ctx, tx, ex.sync_config or "", UPDATE, body_json)
        offset += count
        if is_last_chunk:
            break
    if offset != ex.log_synced:
        executions.set_columns(tx.conn, ex.id, log_synced=offset)


def _log_chunk(entries: Sequence[executions.LogEntry]) -> tuple[int, str]:
    """How many of the leading entries fit one update (at least one), and their JSON as the
    update's "log" carries them, without its brackets."""
    texts: list[str] = []
    size = 0
    for e in entries:
        text = dump([e.time, e.message, e.fields])
        size += utf8_bytes(text) + 1
        if texts and size > MAX_LOG_BYTES_PER_UPDATE:
            break
        texts.append(text)
    return len(texts), ",".join(texts)


def _end_unsendable(ctx: Context, tx: Transaction, ex: Execution, size: int) -> Execution:
    """End ``ex`` (a received execution) ENDED_ERROR here, because an update of it cannot
    fit one envelope; its process, if it runs, is stopped (the runner hears CANCEL)."""
    message = (
        f"this execution's update (outputs, message and log) came to {size} bytes of JSON, "
        f"more than one message of the link carries ({MAX_BODY_BYTES} bytes), so it was "
        "ended here and its log was not sent on: make its outputs and log lines smaller"
    )
    if ex.is_ended:
        return ex  # an ended execution never changes: the other side learns its end as it is
    values = {"status": Status.ENDED_ERROR, "message": message, "ended_at": ctx.now()}
    executions.update(tx.conn, ex.id, **values)
    tx.publish(Event.CANCEL, ex.id)
    tx.publish(Event.ENDED, ex.id)
    return executions.get(tx.conn, ex.id)


def _unsendable_update(ex: Execution, offset: int) -> dict[str, Any]:
    """The update that ends ``ex`` on the other side too, carrying no outputs and no log."""
    return {
        "execution_id": ex.remote_execution_id,
        "remote_id": ex.id,
        "status": ex.status,
        "output_value": {},
        "message": ex.message,
        "started_at": ex.started_at,
        "ended_at": ex.ended_at,
        "log_offset": offset,
        "log": [],
    }


def replace_unsendable(ctx: Context, name: str, seq: int) -> None:
    """Rewrite message ``seq`` of sync config ``name``, too large for any envelope (written by
    an earlier version), into one that fits under the same number, ending its execution."""
    with ctx.transaction() as tx:
        message = outbox.find(tx.conn, name, seq)
        if message is None:
            return  # acknowledged meanwhile
        size = message.body_bytes
        if size <= MAX_BODY_BYTES:
            return
        type_, body = _fitting(ctx, tx, message.type, message.body, size)
        outbox.rewrite(tx.conn, name, seq, type_, body)
        tx.publish(Event.OUTBOX, name)


def _fitting(
    ctx: Context, tx: Transaction, type_: str, body: dict[str, Any], size: int
) -> tuple[str, dict[str, Any]]:
    """A message that fits in place of an unsendable one, after ending what it was about."""
    if type_ == START:
        ex = executions.find(tx.conn, str(body.get("execution_id")))
        if ex is not None and not ex.is_ended:
            message = (
                f"this execution's start (its script and inputs) is {size} bytes of JSON and "
                f"does not fit one message of the link (at most {MAX_BODY_BYTES} bytes), so "
                "it was never sent: pass less data in the inputs"
            )
            values = {"status": Status.ENDED_ERROR, "message": message}
            executions.update(tx.conn, ex.id, ended_at=ctx.now(), **values)
            tx.publish(Event.ENDED, ex.id)
        # As a withdrawn start: delivered, it creates nothing over there.
        return CANCEL, {"execution_id": body.get("execution_id")}
    if type_ == UPDATE:
        ex = executions.find(tx.conn, str(body.get("remote_id")))
        if ex is not None:
            ex = _end_unsendable(ctx, tx, ex, size)
            return UPDATE, _unsendable_update(ex, body.get("log_offset") or 0)
    note = f"[cut: this message was {size} bytes, more than one message of a link carries]"
    small = {k: v for k, v in body.items() if limits.json_bytes(v) <= 64 * 1024}
    if type_ == UPDATE:  # of an execution deleted here since: end it over there all the same
        small.update(status=Status.ENDED_ERROR, output_value={}, log=[], message=note)
        small.setdefault("ended_at", ctx.now())
    else:  # a mirror: a copy for show only
        small.update(script=note, input_value={}, output_value={}, message=note)
    return type_, small


def _append(ctx: Context, tx: Transaction, name: str, type_: str, body_json: str) -> None:
    outbox.append(tx.conn, name, type_, body_json, ctx.now())
    tx.publish(Event.OUTBOX, name)
