"""Flow use cases: create, change and delete flows; scripts must compile before they are saved."""

from __future__ import annotations

import ast

from tether import errors
from tether.actions.context import Context
from tether.store import flows
from tether.store.flows import Flow

NAME_PATTERN = r"^[A-Za-z0-9_.\- ]{1,200}$"
HANDLER = "handler"


def check_script(name: str, script: str) -> None:
    """Refuse a script that does not compile, or whose handler the engine could not call."""
    try:
        tree = ast.parse(script, f"<flow {name}>")
        compile(tree, f"<flow {name}>", "exec")
    except SyntaxError as exc:
        raise errors.FlowScriptInvalid(name=name, line=exc.lineno or 0, detail=exc.msg) from exc
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise errors.FlowScriptInvalid(name=name, line=0, detail=str(exc)) from exc
    check_handler(name, tree)


def check_handler(name: str, tree: ast.Module) -> None:
    """Refuse a script without a handler, or whose handler the engine cannot call.

    Only a plain top-level ``def handler`` is checked; a handler bound another way (imported,
    assigned, decorated) is taken on trust, since only running it can tell.
    """
    found = _last_handler_def(tree)
    if found is None:
        if not _binds_handler(tree):
            raise errors.FlowHandlerInvalid(
                name=name, line=0, detail="the script defines no handler"
            )
        return
    problem = _signature_problem(found)
    if problem:
        raise errors.FlowHandlerInvalid(name=name, line=found.lineno, detail=problem)


def _last_handler_def(tree: ast.Module) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The top-level ``def handler`` that wins (the last one), unless something else rebinds it."""
    found: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            if statement.name == HANDLER:
                found = statement
        elif _binds_handler(statement):
            return None
    if found is not None and found.decorator_list:
        return None
    return found


def _binds_handler(node: ast.AST) -> bool:
    """Whether anything in ``node`` may bind the name ``handler`` (or a star import may)."""
    return any(HANDLER in _bound_names(inner) for inner in ast.walk(node))


def _bound_names(node: ast.AST) -> tuple[str, ...]:
    """The names ``node`` binds by itself; a star import counts as binding ``handler``."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return (node.id,)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return (node.name,)
    if isinstance(node, ast.Import | ast.ImportFrom):
        names = [alias.asname or alias.name for alias in node.names]
        return tuple(HANDLER if name == "*" else name for name in names)
    return ()


def _signature_problem(handler: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """Why the engine could not call ``handler``, or None.

    The engine passes (system, this, inputs) when the handler has three or more parameters
    of any kind, else (system, this): see runner.child.
    """
    if isinstance(handler, ast.AsyncFunctionDef):
        return "the handler is 'async def'; the engine calls a plain 'def'"
    args = handler.args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    count = positional + len(args.kwonlyargs) + bool(args.vararg) + bool(args.kwarg)
    passed = 3 if count >= 3 else 2
    if any(default is None for default in args.kw_defaults):
        return "the handler has a keyword-only parameter without a default"
    if required > passed or (positional < passed and args.vararg is None):
        taken = ", ".join(a.arg for a in (*args.posonlyargs, *args.args)) or "nothing"
        return f"the handler takes ({taken}), but the engine passes {passed} arguments"
    return None


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
