"""Process use cases: join the registry, renew a lease, leave, end the work of dead processes.

A process that lost its lease never writes its executions' ends: whoever reaps it does, so
that an execution is never run twice and never left RUNNING with nobody running it.
"""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from dataclasses import dataclass

from tether.actions import dialing as dialing_actions
from tether.actions import executions as execution_actions
from tether.actions.context import Context
from tether.statuses import Status
from tether.store import dialer_leases, executions, processes, sync_configs
from tether.store.processes import Process

ORPHAN_MESSAGE = (
    "the process '{worker}' that ran this execution is not in the workspace's process "
    "registry (it stopped, or ran an older version of tether): the script may have partly "
    "run; it will not run again: start a new execution if it is still needed"
)


_KIND_WORDS = {processes.SERVE: "server", processes.WORKER: "worker"}


@dataclass(frozen=True)
class ProcessView:
    """A live process as the API shows it."""

    process: Process
    running: list[str]  # ids of the executions it runs
    dials: list[str]  # sync configs whose dialer it runs


def join(ctx: Context, *, kind: str, name: str | None, lease_s: float) -> Process:
    """Register this process under a fresh id (named ``name``, else after its host); its
    lease starts now."""
    with ctx.transaction() as tx:
        return processes.insert(
            tx.conn,
            id=str(uuid.uuid4()),
            kind=kind,
            name=name or socket.gethostname(),
            host=socket.gethostname(),
            pid=os.getpid(),
            lease_s=lease_s,
        )


def renew(ctx: Context, process_id: str) -> bool:
    """Extend this process's lease; False when it ran out (the process must fence itself)."""
    with ctx.transaction() as tx:
        return processes.renew(tx.conn, process_id)


def leave(ctx: Context, process_id: str) -> None:
    """Remove this process from the registry at a clean stop (its executions have ended)."""
    with ctx.transaction() as tx:
        processes.delete(tx.conn, process_id)


def take_over(ctx: Context, process_id: str, message: str) -> list[str]:
    """On a store only one process uses (SQLite): every other process is gone, so end the
    executions still RUNNING and drop the others' rows; the ids of the ended executions."""
    with ctx.transaction() as tx:
        ids = executions.running_ids(tx.conn)
        for execution_id in ids:
            execution_actions.end_in(ctx, tx, execution_id, Status.ENDED_ERROR, message)
        processes.delete_others(tx.conn, process_id)
        return ids


def reap(ctx: Context) -> list[str]:
    """End the executions of every process whose lease ran out, and of claimers that are in
    no process row, ENDED_ERROR; the ids of the executions ended."""
    ended: list[str] = []
    with ctx.transaction() as tx:
        for dead in processes.lock_expired(tx.conn):
            message = lost_message(dead)
            for execution_id in executions.running_ids(tx.conn, dead.id):
                execution_actions.end_in(ctx, tx, execution_id, Status.ENDED_ERROR, message)
                ended.append(execution_id)
            processes.delete(tx.conn, dead.id)
        for execution_id, worker in executions.orphaned(tx.conn):
            message = ORPHAN_MESSAGE.format(worker=worker)
            execution_actions.end_in(ctx, tx, execution_id, Status.ENDED_ERROR, message)
            ended.append(execution_id)
    return ended


def lost_message(dead: Process) -> str:
    """What an execution of a process that lost its lease says: who, when, and what now."""
    heartbeat = datetime.datetime.fromtimestamp(dead.heartbeat_at, datetime.UTC)
    return (
        f"the {_KIND_WORDS.get(dead.kind, dead.kind)} '{dead.name}' (process {dead.id}, pid {dead.pid} on {dead.host}) "
        f"running this execution was lost: its last heartbeat was at "
        f"{heartbeat.isoformat(timespec='seconds')} and it did not renew its {dead.lease_s:g} s "
        "lease. The script may have partly run; it will not run again: start a new "
        "execution if it is still needed"
    )


def live(ctx: Context) -> list[ProcessView]:
    """The processes that hold their lease, with what each runs and dials, oldest first."""
    with ctx.db.read() as conn:
        found = processes.live(conn)
        _names, dialing = sync_configs.dialing_versions(conn)
        holders = {
            name: holding.holder
            for name, holding in dialer_leases.holdings(
                conn, dialing_actions.DEFAULT_TAKEOVER_S
            ).items()
            if name in dialing
        }
        return [
            ProcessView(
                process=item,
                running=executions.running_ids(conn, item.id),
                dials=_dials(item, holders, sorted(dialing), is_leased=ctx.origin is not None),
            )
            for item in found
        ]


def _dials(
    item: Process, holders: dict[str, str | None], dialing: list[str], *, is_leased: bool
) -> list[str]:
    """The links ``item`` dials: those whose dialer lease it holds (none before a server
    first takes one); on a store without leases (one server, SQLite), every dialing link
    is the server's."""
    if item.kind != processes.SERVE:
        return []
    if not is_leased:
        return dialing
    return sorted(name for name, holder in holders.items() if holder == item.id)
