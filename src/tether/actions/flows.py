"""Flow use cases: create, change and delete flows; scripts must compile before they are saved."""

from __future__ import annotations

from tether import errors
from tether.actions.context import Context
from tether.store import flows
from tether.store.flows import Flow

NAME_PATTERN = r"^[A-Za-z0-9_.\- ]{1,200}$"


def check_script(name: str, script: str) -> None:
    """Refuse a script that does not compile, naming the line and the error."""
    try:
        compile(script, f"<flow {name}>", "exec")
    except SyntaxError as exc:
        raise errors.FlowScriptInvalid(name=name, line=exc.lineno or 0, detail=exc.msg) from exc
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise errors.FlowScriptInvalid(name=name, line=0, detail=str(exc)) from exc


def create(ctx: Context, name: str, script: str, description: str = "") -> Flow:
    """Save a new flow."""
    check_script(name, script)
    now = ctx.now()
    item = Flow(name=name, script=script, description=description, created_at=now, updated_at=now)
    with ctx.transaction() as tx:
        flows.insert(tx.conn, item)
    return item


def change(
    ctx: Context, name: str, *, script: str | None = None, description: str | None = None
) -> Flow:
    """Change the script or description of a flow."""
    values: dict[str, object] = {"updated_at": ctx.now()}
    if script is not None:
        check_script(name, script)
        values["script"] = script
    if description is not None:
        values["description"] = description
    with ctx.transaction() as tx:
        flows.update(tx.conn, name, **values)
        return flows.get(tx.conn, name)


def delete(ctx: Context, name: str) -> None:
    """Delete a flow; its executions keep the script they ran."""
    with ctx.transaction() as tx:
        flows.delete(tx.conn, name)


def get(ctx: Context, name: str) -> Flow:
    """One flow."""
    with ctx.db.read() as conn:
        return flows.get(conn, name)


def list_all(ctx: Context, search: str | None = None) -> list[Flow]:
    """All flows, optionally filtered by a part of their name."""
    with ctx.db.read() as conn:
        return flows.list_all(conn, search)
