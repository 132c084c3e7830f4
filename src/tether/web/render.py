"""How store records look in API answers: plain JSON with ISO 8601 times."""

from __future__ import annotations

import datetime
from typing import Any

from tether.store import executions
from tether.store.executions import Execution, LogEntry
from tether.store.flows import Flow
from tether.store.users import User


def iso(timestamp: float | None) -> str | None:
    """``timestamp`` (Unix seconds) as ISO 8601 in UTC."""
    if timestamp is None:
        return None
    return (
        datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat().replace("+00:00", "Z")
    )


def execution(ex: Execution) -> dict[str, Any]:
    record = executions.as_record(ex)
    for key in ("created_at", "started_at", "ended_at"):
        record[key] = iso(record[key])
    return record


def log_entry(entry: LogEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": iso(entry.time),
        "message": entry.message,
        "fields": entry.fields,
    }


def flow(item: Flow) -> dict[str, Any]:
    return {
        "name": item.name,
        "script": item.script,
        "description": item.description,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
    }


def user(item: User) -> dict[str, Any]:
    return {
        "name": item.name,
        "role": item.role,
        "is_enabled": item.is_enabled,
        "created_at": iso(item.created_at),
    }
