"""REST route for the workspace's live serve and worker processes and their leases."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from tether import errors
from tether.actions import processes
from tether.actions.context import Context
from tether.store.users import User
from tether.web import render
from tether.web.auth import context, require
from tether.web.contract import answers

router = APIRouter(tags=["processes"], responses=answers(errors.Unauthenticated, errors.Forbidden))


@router.get("/process")
def list_processes(
    ctx: Context = Depends(context), _user: User = Depends(require("see processes"))
) -> list[dict[str, Any]]:
    """The live processes (admins): kind, host, pid, lease, running executions, links dialed."""
    return [
        {
            "id": view.process.id,
            "kind": view.process.kind,
            "name": view.process.name,
            "host": view.process.host,
            "pid": view.process.pid,
            "started_at": render.iso(view.process.started_at),
            "heartbeat_at": render.iso(view.process.heartbeat_at),
            "lease_s": view.process.lease_s,
            "running_executions": view.running,
            "dials": view.dials,
        }
        for view in processes.live(ctx)
    ]
