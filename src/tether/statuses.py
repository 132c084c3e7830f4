"""The words the engine's state is told in: an execution's status, why the runner stops a
child, and the kinds of event that wake waiters.

Standard library only (the child side imports it too). Each value is the string on the
wire and in the database, so a member compares equal to its string.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where an execution is; it only moves forward (store/executions.is_forward)."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    ENDED_SUCCESS = "ENDED_SUCCESS"
    ENDED_ERROR = "ENDED_ERROR"
    ENDED_CANCELLED = "ENDED_CANCELLED"


STATUSES = tuple(Status)
ENDED = (Status.ENDED_SUCCESS, Status.ENDED_ERROR, Status.ENDED_CANCELLED)


class StopReason(StrEnum):
    """Why the runner stops a child before it ends by itself."""

    CANCEL = "cancel"  # a user or a parent asked
    TIMEOUT = "timeout"  # max_runtime_s passed
    SHUTDOWN = "shutdown"  # the server stops; the execution ends for the restart
    STORE = "store"  # the store failed under the execution
    FENCED = "fenced"  # this process lost its lease: another owns the execution now


class Event(StrEnum):
    """What happened, for in-process waiters (actions/events) and other processes' (NOTIFY)."""

    QUEUED = "queued"  # an execution became QUEUED: runners should claim
    ENDED = "ended"  # an execution ended: waiters on it should look again
    CANCEL = "cancel"  # an execution was asked to stop: whoever runs it should signal it
    OUTBOX = "outbox"  # a sync config's outbox grew: its link should deliver
    CONFIG = "config"  # a sync config was created, changed or deleted
    ACKED = "acked"  # a backfilling sync config's outbox shrank: its next page may go in
    USERS = "users"  # a user or a token was changed, disabled, revoked or deleted
    LOCK = "lock"  # a setting's lock was released: executions waiting to acquire it look again
    MESSAGE = "message"  # a message was answered: executions waiting for it look again
