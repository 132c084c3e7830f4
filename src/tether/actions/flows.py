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


def apply_all(ctx: Context, scripts: dict[str, str]) -> dict[str, list[str]]:
    """Create or update every flow of ``scripts`` (name: script) in one transaction, or none.

    Every script is checked first: one refused script saves nothing, and the error names
    each refused one. Answers the names created, updated and unchanged.
    """
    refusals: list[str] = []
    for name, script in sorted(scripts.items()):
        try:
            check_script(name, script)
        except errors.InvalidInput as exc:
            refusals.append(exc.message)
    if refusals:
        raise errors.FlowScriptsRefused(count=len(refusals), details=" | ".join(refusals))
    changes: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    now = ctx.now()
    with ctx.transaction() as tx:
        existing = {item.name: item for item in flows.list_all(tx.conn)}
        for name, script in sorted(scripts.items()):
            before = existing.get(name)
            if before is None:
                flows.insert(tx.conn, Flow(name, script, "", now, now))
                changes["created"].append(name)
            elif before.script != script:
                flows.update(tx.conn, name, script=script, updated_at=now)
                changes["updated"].append(name)
            else:
                changes["unchanged"].append(name)
    return changes


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
