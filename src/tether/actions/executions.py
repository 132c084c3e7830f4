"""Execution use cases: start, claim, record output and log, end, cancel, recover.

Each function is one transaction; linked changes reach the outbox in that same transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from tether import errors, limits
from tether.actions import outgoing
from tether.actions.context import Context, Transaction
from tether.statuses import ENDED, Event, Status
from tether.store import database, executions, flows, sync_configs
from tether.store.executions import Execution, LogEntry
from tether.store.sync_configs import LinkState, SyncConfig

SyncConfigState = tuple[SyncConfig, LinkState]

MAX_NAME_CHARS = 200
# A link that exchanged within this long counts as live when a cancel decides whether to end
# a remote execution at once: a living dialer renews its poll within one hold (25 s).
LIVE_LINK_S = 60.0


def start(
    ctx: Context,
    *,
    flow_name: str,
    input_value: Any = None,
    name: str | None = None,
    parent_id: str | None = None,
    run: bool = True,
    remote_workspace_name: str | None = None,
    max_runtime_s: float | None = None,
    execution_id: str | None = None,
    owner: str | None,
    rerun_of: str | None = None,
) -> Execution:
    """Create an execution of flow ``flow_name`` (queued unless ``run`` is False).

    ``owner``: the user who starts it; a child inherits its parent's owner instead.
    ``execution_id``: the new execution's id, chosen by the caller (a uuid), so that it can
    watch for the execution's end before the execution exists.
    """
    input_value = checked_inputs(input_value)
    if max_runtime_s is not None and max_runtime_s <= 0:
        raise errors.InvalidInput(detail="max_runtime_s must be a positive number of seconds")
    with ctx.transaction() as tx:
        flow = flows.get(tx.conn, flow_name)
        if remote_workspace_name is not None:
            check_remote_target(tx, remote_workspace_name)
        if parent_id is not None:
            parent = executions.get(tx.conn, parent_id)
            owner = parent.owner
            if remote_workspace_name is not None:
                check_onward_remote(tx, parent)
        ex = new_execution(
            ctx,
            name=name or flow.name,
            flow_name=flow.name,
            script=flow.script,
            input_value=input_value,
            status=Status.QUEUED if run else Status.PENDING,
            parent_id=parent_id,
            sync_config=remote_workspace_name,
            max_runtime_s=max_runtime_s,
            owner=owner,
            rerun_of=rerun_of,
            **({"id": execution_id} if execution_id else {}),
        )
        executions.insert(tx.conn, ex)
        return _announce_start(ctx, tx, ex)


def rerun(ctx: Context, execution_id: str, *, owner: str) -> Execution:
    """Start the flow of an execution again with the same inputs, name and place (here or the
    same linked workspace); the new execution records which one it repeats."""
    ex = get(ctx, execution_id)
    if ex.origin != executions.LOCAL or ex.flow_name is None:
        raise errors.Conflict(
            detail=f"execution '{ex.id}' was started by a linked workspace: re-run it over there"
        )
    return start(
        ctx,
        flow_name=ex.flow_name,
        input_value=ex.input_value,
        name=ex.name,
        remote_workspace_name=ex.sync_config,
        max_runtime_s=ex.max_runtime_s,
        owner=owner,
        rerun_of=ex.id,
    )


def remote_targets(ctx: Context) -> list[tuple[str, str]]:
    """The sync configs through which this workspace may start executions, with their link
    states: enabled, role controlling."""
    with ctx.db.read() as conn:
        return [
            (config.name, sync_configs.get_state(conn, config.name).state)
            for config in sync_configs.list_all(conn)
            if config.is_enabled and config.role == sync_configs.CONTROLLING
        ]


def check_remote_target(tx: Transaction, name: str) -> None:
    """Refuse a remote_workspace_name that cannot run executions for this workspace."""
    config = sync_configs.find(tx.conn, name)
    if config is None:
        raise errors.RemoteWorkspaceUnusable(
            name=name, detail="no sync config has that name; check remote_workspace_name"
        )
    if not config.is_enabled:
        raise errors.RemoteWorkspaceUnusable(
            name=name, detail="it is disabled: enable it or pick another remote_workspace_name"
        )
    if config.role != sync_configs.CONTROLLING:
        raise errors.RemoteWorkspaceUnusable(
            name=name,
            detail="its role is 'controlled', so the other workspace controls this one; "
            "only a sync config with role 'controlling' can start executions over there",
        )


def check_onward_remote(tx: Transaction, starter: Execution) -> None:
    """Refuse a remote start by ``starter`` when it descends from a received execution
    whose sync config does not allow onward remote starts."""
    via = received_via(tx, starter)
    if via is None:
        return
    config = sync_configs.find(tx.conn, via)
    if config is None or not config.allow_onward_remote:
        raise errors.OnwardRemoteRefused(name=via)


def received_via(tx: Transaction, ex: Execution) -> str | None:
    """The sync config that ``ex``, or its nearest received ancestor, came over; None if local."""
    current: Execution | None = ex
    while current is not None:
        if current.origin == executions.RECEIVED:
            return current.sync_config
        if current.parent_id is None:
            return None
        current = executions.find(tx.conn, current.parent_id)
    return None


def run_pending(ctx: Context, execution_id: str, *, starter_id: str | None = None) -> Execution:
    """Queue a PENDING execution (``run_async``); queued or running ones are left alone.

    ``starter_id``: the execution asking (over flow_api), held to allow_onward_remote.
    """
    with ctx.transaction() as tx:
        ex = executions.get_for_update(tx.conn, execution_id)
        _refuse_mirror(ex)
        if starter_id is not None and ex.is_remote_child:
            check_onward_remote(tx, executions.get(tx.conn, starter_id))
        if ex.status != Status.PENDING:
            return ex
        executions.update(tx.conn, ex.id, status=Status.QUEUED)
        return _announce_start(ctx, tx, executions.get(tx.conn, ex.id))


def claim_next(ctx: Context, worker: str) -> Execution | None:
    """Claim the oldest runnable QUEUED execution for ``worker`` and mark it RUNNING."""
    claimed = claim_some(ctx, worker, 1)
    return claimed[0] if claimed else None


def claim_some(ctx: Context, worker: str, limit: int) -> list[Execution]:
    """Claim up to ``limit`` of the oldest runnable QUEUED executions for process ``worker``
    (it must hold its lease), in one transaction."""
    # Looking costs no write lock; most calls find nothing, or find what they then claim.
    with ctx.db.read() as conn:
        if not executions.queued_ids(conn, limit=1):
            return []
    claimed: list[Execution] = []
    with ctx.transaction() as tx:
        rooms = _link_rooms(tx)
        while len(claimed) < limit:
            full = {name for name, room in rooms.items() if room <= 0}
            # A link with a cap takes at most its room from one statement: a round claims no
            # more than the smallest room left, and rounds go on while they claim any.
            open_rooms = [room for room in rooms.values() if room > 0]
            wanted = min([limit - len(claimed), *open_rooms])
            batch = executions.claim_queued(tx.conn, worker, wanted, ctx.now(), full)
            for ex in batch:
                claimed.append(ex)
                if ex.origin != executions.RECEIVED:
                    # The controlling side hears of a received one from announce_running or
                    # from its end: a short execution then costs one message back, not two.
                    outgoing.after_change(ctx, tx, ex)
                elif ex.sync_config in rooms:
                    rooms[ex.sync_config] -= 1
            if len(batch) < wanted or not rooms:
                break
    return claimed


def _link_rooms(tx: Transaction) -> dict[str, int]:
    """How many more received executions each sync config with a max_running may run now.

    The capped sync configs are locked first (the documented lock order: sync config, then
    executions), so that concurrent claimers on PostgreSQL cannot both take the last room.
    """
    caps = sync_configs.lock_caps(tx.conn)
    if not caps:
        return {}
    running = executions.running_received(tx.conn, list(caps))
    return {name: cap - running.get(name, 0) for name, cap in caps.items()}


def announce_running(ctx: Context, execution_id: str) -> None:
    """Tell the controlling side that a received execution is still running."""
    with ctx.transaction() as tx:
        # Locked: on PostgreSQL an end committed while this read would otherwise be followed
        # by a RUNNING update written after it.
        ex = executions.get_for_update(tx.conn, execution_id)
        if ex.status == Status.RUNNING:
            outgoing.after_change(ctx, tx, ex)


def save(
    ctx: Context,
    execution_id: str,
    *,
    output_value: dict[str, Any] | None = None,
    output_updates: dict[str, Any] | None = None,
    message: str | None = None,
    name: str | None = None,
) -> Execution:
    """Replace or merge outputs, set the message and rename a running execution."""
    with ctx.transaction() as tx:
        ex = executions.get_for_update(tx.conn, execution_id)
        values: dict[str, Any] = {}
        if output_value is not None:
            values["output_value"] = _checked_outputs(output_value)
        if output_updates:
            merged = dict(values.get("output_value", ex.output_value))
            merged.update(output_updates)
            values["output_value"] = _checked_outputs(merged)
        if message is not None:
            values["message"] = limits.cut_text(str(message), limits.MAX_EXECUTION_MESSAGE_BYTES)
        if name is not None:
            if not str(name).strip():
                raise errors.InvalidInput(detail="an execution's name cannot be empty")
            values["name"] = str(name)[:MAX_NAME_CHARS]
        if values:
            executions.update(tx.conn, ex.id, **values)
            ex = executions.get(tx.conn, ex.id)
            outgoing.after_change(ctx, tx, ex)
        return ex


def append_log(
    ctx: Context, execution_id: str, lines: Sequence[tuple[float, str, dict[str, Any]]]
) -> None:
    """Append log lines (time, message, fields) to an execution's log."""
    with ctx.transaction() as tx:
        ex = executions.get_for_update(tx.conn, execution_id)
        if ex.is_ended:
            return  # late lines, e.g. of a process that lost its lease: they change nothing
        entries = [
            LogEntry(seq=ex.log_count + i, time=t, message=m, fields=f)
            for i, (t, m, f) in enumerate(lines)
        ]
        executions.append_log(tx.conn, ex.id, ex.log_count, entries)
        outgoing.after_change(ctx, tx, executions.get(tx.conn, ex.id), appended=entries)


def end(
    ctx: Context,
    execution_id: str,
    status: str,
    message: str | None,
    output_value: dict[str, Any] | None = None,
) -> Execution:
    """End an execution with a final status, unless it has ended already."""
    if (refused := _refused_status(status)) is not None:
        raise refused
    with ctx.transaction() as tx:
        return end_in(ctx, tx, execution_id, status, message, output_value)


def _refused_status(status: str) -> errors.InvalidInput | None:
    """Why ``status`` cannot end an execution; None for a final status."""
    if status in ENDED:
        return None
    finals = ", ".join(sorted(ENDED))
    return errors.InvalidInput(detail=f"'{status}' is not a final status: use one of {finals}")


@dataclasses.dataclass(frozen=True)
class Ending:
    """The end the runner writes for one execution."""

    execution_id: str
    status: str
    message: str | None


class _Failed(Exception):
    """One ending of a batch failed: write them again, each in a savepoint."""


def end_all(ctx: Context, endings: Sequence[Ending]) -> list[errors.TetherError | None]:
    """End several executions in one transaction; for each, None or the error that left it
    as it was (deleted meanwhile, say). The runner's ends that come at once (a cancel of
    thousands) are written so: one commit for all of them instead of one each.

    Raises:
        errors.StoreUnavailable: the store failed; none of them has ended.
    """
    # Like an envelope (incoming.apply_envelope): first all together; if one fails, again,
    # each in a savepoint, so that it alone is left as it was.
    try:
        return _end_all(ctx, endings, is_careful=False)
    except _Failed:
        return _end_all(ctx, endings, is_careful=True)


def _end_all(
    ctx: Context, endings: Sequence[Ending], is_careful: bool
) -> list[errors.TetherError | None]:
    outcomes: list[errors.TetherError | None] = []
    with ctx.transaction() as tx:
        for ending in endings:
            if (refused := _refused_status(ending.status)) is not None:
                outcomes.append(refused)
                continue
            try:
                with database.savepoint(tx.conn, is_used=is_careful):
                    end_in(ctx, tx, ending.execution_id, ending.status, ending.message)
            except errors.StoreUnavailable:
                raise
            except errors.TetherError as exc:
                if not is_careful:
                    raise _Failed() from exc
                outcomes.append(exc)
            else:
                outcomes.append(None)
    return outcomes


def end_in(
    ctx: Context,
    tx: Transaction,
    execution_id: str,
    status: str,
    message: str | None,
    output_value: dict[str, Any] | None = None,
) -> Execution:
    """End an execution inside ``tx`` and tell whoever waits on it, here or over a link."""
    ex = executions.get_for_update(tx.conn, execution_id)
    if ex.is_ended:
        return ex
    values: dict[str, Any] = {"status": status, "ended_at": ctx.now()}
    if message is not None:  # a message the script saved stays unless the end names one
        values["message"] = limits.cut_text(str(message), limits.MAX_EXECUTION_MESSAGE_BYTES)
    if output_value is not None:
        values["output_value"] = _checked_outputs(output_value)
    executions.update(tx.conn, ex.id, **values)
    ex = executions.get(tx.conn, ex.id)
    outgoing.after_change(ctx, tx, ex)
    if ex.origin == executions.RECEIVED:
        tx.publish(Event.QUEUED)  # its link's max_running may have held others back
    return ex


def cancel(ctx: Context, execution_id: str) -> Execution:
    """Cancel an execution and its children that have not ended."""
    with ctx.transaction() as tx:
        ex = executions.get_for_update(tx.conn, execution_id)
        _refuse_mirror(ex)
        cancel_tree(ctx, tx, ex)
        return executions.get(tx.conn, execution_id)


def cancel_tree(ctx: Context, tx: Transaction, ex: Execution) -> None:
    """Cancel ``ex`` and its unended descendants, one generation at a time.

    A parent of 3,000 children took 9.5 s in one transaction when each child was read again
    and asked for its own children and the mirroring links; by generations, and with what
    this transaction wrote taken as read, see bench/README.md ("waiting").
    """
    mirroring = sync_configs.mirroring_names(tx.conn)
    generation = [ex]
    while generation:
        parents = [item.id for item in generation if _cancel_one(ctx, tx, item, mirroring)]
        generation = executions.unended_children_of(tx.conn, parents) if parents else []


def _cancel_one(ctx: Context, tx: Transaction, ex: Execution, mirroring: list[str]) -> bool:
    """Cancel one execution of a tree; False for one whose children are left alone."""
    if ex.is_ended or ex.origin == executions.MIRROR:
        return False
    if ex.is_remote_child and ex.status != Status.PENDING:
        _cancel_remote(ctx, tx, ex)
        ex = executions.get(tx.conn, ex.id)
    elif ex.status in (Status.PENDING, Status.QUEUED):
        values: dict[str, Any] = {
            "status": Status.ENDED_CANCELLED,
            "message": "cancelled before it started",
            "ended_at": ctx.now(),
        }
        executions.update(tx.conn, ex.id, **values)
        ex = dataclasses.replace(ex, **values)
    else:
        executions.update(tx.conn, ex.id, is_cancel_requested=True)
        tx.publish(Event.CANCEL, ex.id)
        ex = dataclasses.replace(ex, is_cancel_requested=True)
    outgoing.after_change(ctx, tx, ex, mirroring)
    return True


def _cancel_remote(ctx: Context, tx: Transaction, ex: Execution) -> None:
    """Cancel an execution that runs in a linked workspace.

    A start the other side has not acknowledged is withdrawn, so that it never runs if it
    is delivered later. Over a link that is down the execution then ends at once (else it
    would wait for the link); over a live one the other side reports the end, as it does
    for every cancel (a start it never got, it reports cancelled before it started).
    """
    name = ex.sync_config or ""
    if sync_configs.find(tx.conn, name) is None:
        message = f"cancelled; sync config '{name}' no longer exists"
    elif ex.is_cancel_requested:
        return
    else:
        # Either way a cancel waits in the outbox (withdrawing appends one behind the start).
        is_withdrawn = ex.status == Status.QUEUED and outgoing.withdraw_start(ctx, tx, ex)
        if not is_withdrawn:
            outgoing.send_cancel(ctx, tx, ex)
        if not is_withdrawn or _is_link_live(ctx, tx, name):
            executions.update(tx.conn, ex.id, is_cancel_requested=True)
            return
        # The words the other side uses for a start cancelled before it ran, so that both
        # sides agree also when the start had got there just before the link went down.
        message = "cancelled before it started"
    values = {"status": Status.ENDED_CANCELLED, "message": message, "ended_at": ctx.now()}
    executions.update(tx.conn, ex.id, **values)


def _is_link_live(ctx: Context, tx: Transaction, name: str) -> bool:
    """Whether link ``name`` exchanged lately, so that the other side answers a cancel soon."""
    state = sync_configs.get_state(tx.conn, name)
    silent_s = ctx.now() - (state.last_exchange_at or 0)
    return state.state == sync_configs.CONNECTED and silent_s <= LIVE_LINK_S


def end_unfinished_of_link(ctx: Context, tx: Transaction, name: str) -> None:
    """End every unended execution of sync config ``name``, which is being deleted."""
    message = f"sync config '{name}' was deleted before this execution ended"
    for execution_id in executions.unended_ids_of_link(tx.conn, name):
        ex = executions.get_for_update(tx.conn, execution_id)
        if ex.is_ended:
            continue
        values = {"status": Status.ENDED_ERROR, "message": message, "ended_at": ctx.now()}
        executions.update(tx.conn, ex.id, **values)
        if ex.origin == executions.RECEIVED:
            # Running here: stop its process. No update goes back, the link is going.
            tx.publish(Event.CANCEL, ex.id)
            tx.publish(Event.ENDED, ex.id)
        else:
            outgoing.after_change(ctx, tx, executions.get(tx.conn, ex.id))
        for child in executions.unended_children(tx.conn, ex.id):
            cancel_tree(ctx, tx, child)


def fail_interrupted(ctx: Context, worker: str | None, message: str) -> list[str]:
    """End executions left RUNNING by a process that stopped (all, or one process's); return
    their ids."""
    with ctx.transaction() as tx:
        ids = executions.running_ids(tx.conn, worker)
        for execution_id in ids:
            end_in(ctx, tx, execution_id, Status.ENDED_ERROR, message)
        return ids


def cancels_requested(ctx: Context, ids: Sequence[str]) -> list[str]:
    """Those of ``ids`` asked to stop: the poll behind cancels announced in other processes."""
    with ctx.db.read() as conn:
        return executions.cancel_requested(conn, ids)


def get(ctx: Context, execution_id: str) -> Execution:
    """One execution."""
    with ctx.db.read() as conn:
        return executions.get(conn, execution_id)


def list_ids(ctx: Context, limit: int, **filters: Any) -> list[str]:
    """Ids of the executions matching ``filters``, newest first."""
    with ctx.db.read() as conn:
        return [ex.id for ex in executions.list_filtered(conn, limit=limit, **filters)]


def _announce_start(ctx: Context, tx: Transaction, ex: Execution) -> Execution:
    """Queue ``ex`` here or send its start over its link; return it as it is now."""
    if ex.status == Status.QUEUED and ex.is_remote_child:
        unsendable = outgoing.send_start(ctx, tx, ex)
        if unsendable is not None:
            # Never sent, so it never runs anywhere: it ends here, and a link stays unwedged.
            values = {"status": Status.ENDED_ERROR, "message": unsendable}
            executions.update(tx.conn, ex.id, ended_at=ctx.now(), **values)
            ex = executions.get(tx.conn, ex.id)
    elif ex.status == Status.QUEUED:
        tx.publish(Event.QUEUED)
    outgoing.after_change(ctx, tx, ex)
    return ex


def new_execution(ctx: Context, **values: Any) -> Execution:
    script = values["script"]
    defaults: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "script_sha256": hashlib.sha256(script.encode()).hexdigest(),
        "output_value": {},
        "message": None,
        "parent_id": None,
        "origin": executions.LOCAL,
        "sync_config": None,
        "remote_execution_id": None,
        "is_cancel_requested": False,
        "max_runtime_s": None,
        "worker": None,
        "owner": None,
        "log_count": 0,
        "log_synced": 0,
        "created_at": ctx.now(),
        "started_at": None,
        "ended_at": None,
        "rerun_of": None,
    }
    defaults.update(values)
    defaults["name"] = str(defaults["name"])[:MAX_NAME_CHARS]
    return Execution(**defaults)


def _refuse_mirror(ex: Execution) -> None:
    if ex.origin == executions.MIRROR:
        raise errors.Conflict(
            detail=f"execution '{ex.id}' is a read-only mirror of an execution in a linked "
            "workspace: act on it over there"
        )


def checked_inputs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.InvalidInput(
            detail=f"input_value must be a JSON object, not {type(value).__name__}: "
            'send for example {"input_value": {"a": 1}}'
        )
    return value


def _checked_outputs(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.InvalidInput(
            detail=f"output_value must be a JSON object (a dict), not {type(value).__name__}"
        )
    size = limits.json_bytes(value)
    if size > limits.MAX_OUTPUTS_BYTES:
        # Refused, not cut: a parent reading a cut value would go on with wrong data.
        raise errors.OutputsTooLarge(size=size, limit=limits.MAX_OUTPUTS_BYTES)
    return value


def remote_waits(ctx: Context, ex: Execution) -> list[tuple[Execution, SyncConfigState | None]]:
    """The unended remote executions ``ex`` is, or waits on, each with its link's config and state."""
    if ex.is_ended:
        return []
    with ctx.db.read() as conn:
        candidates = [ex] if ex.is_remote_child else []
        candidates += executions.unended_children(conn, ex.id, remote_only=True)
        links: dict[str, SyncConfigState | None] = {}  # children mostly share one link
        for candidate in candidates:
            name = candidate.sync_config or ""
            if name not in links:
                config = sync_configs.find(conn, name)
                links[name] = (config, sync_configs.get_state(conn, name)) if config else None
        return [(candidate, links[candidate.sync_config or ""]) for candidate in candidates]
