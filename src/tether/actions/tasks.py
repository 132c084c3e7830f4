"""Task use cases: a connector (REST, SMTP, SSH, ...) run as a child execution.

A task is an execution whose script is a built-in handler (runner/tasks) that the child runs
in the sandbox like any script. Its input_value shows the inputs with secrets masked; the
unmasked inputs are kept encrypted apart, and only the task's own process reads them.
"""

from __future__ import annotations

from typing import Any

from tether import errors
from tether.actions import connectors, outgoing
from tether.actions import executions as execution_actions
from tether.actions.context import Context
from tether.statuses import Event, Status
from tether.store import connectors as connector_rows
from tether.store import executions
from tether.store.executions import Execution

MASK = "********"
# Inputs whose values never show in an execution's record, its log or the API.
SECRET_INPUTS = frozenset(
    {
        "password",
        "passphrase",
        "key",
        "private_key",
        "token",
        "bearer_token",
        "api_key",
        "secret",
        "client_secret",
    }
)
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def script_of(task_type: str) -> str:
    """The built-in script a task of ``task_type`` runs: its execution's script snapshot."""
    return (
        f'"""tether built-in task {task_type}: runs the connector inside this execution."""\n'
        "from tether.runner import tasks\n\n\n"
        "def handler(system, this):\n"
        f"    tasks.run(system, this, {task_type!r})\n"
    )


def masked(inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with the values of secret inputs and secret headers masked."""
    shown: dict[str, Any] = {}
    for key, value in inputs.items():
        if key.lower() in SECRET_INPUTS and value is not None:
            shown[key] = MASK
        elif key == "headers" and isinstance(value, dict):
            shown[key] = {
                h: MASK if str(h).lower() in SECRET_HEADERS else v for h, v in value.items()
            }
        elif key == "auth" and value is not None:
            shown[key] = MASK
        else:
            shown[key] = value
    return shown


def start(
    ctx: Context,
    *,
    parent_id: str,
    task_type: str | None,
    connector: str | None,
    input_value: Any,
    name: str | None = None,
    run: bool = True,
    max_runtime_s: float | None = None,
    execution_id: str | None = None,
) -> Execution:
    """Create a task execution, child of ``parent_id`` (queued unless ``run`` is False)."""
    inputs = execution_actions.checked_inputs(input_value)
    if max_runtime_s is not None and max_runtime_s <= 0:
        raise errors.InvalidInput(detail="max_runtime must be a positive number of seconds")
    with ctx.transaction() as tx:
        parent = executions.get(tx.conn, parent_id)
        shown = masked(inputs)
        if connector is not None:
            item = connector_rows.get(tx.conn, connector)
            _refuse_overrides(item.name, connectors.fixed_inputs(ctx.secret, item), inputs)
            task_type = item.type
            shown = {"connector": item.name, **shown}
        task_type = connectors.check_type(task_type)
        ex = execution_actions.new_execution(
            ctx,
            name=name or connector or task_type,
            flow_name=None,
            script=script_of(task_type),
            input_value=shown,
            status=Status.QUEUED if run else Status.PENDING,
            parent_id=parent_id,
            max_runtime_s=max_runtime_s,
            owner=parent.owner,
            **({"id": execution_id} if execution_id else {}),
        )
        executions.insert(tx.conn, ex)
        sealed = connectors.seal(ctx.secret, inputs)
        row = connector_rows.TaskInput(ex.id, task_type, connector, sealed)
        connector_rows.insert_task_input(tx.conn, row)
        if ex.status == Status.QUEUED:
            tx.publish(Event.QUEUED)
        outgoing.after_change(ctx, tx, ex)
        return ex


def _refuse_overrides(name: str, fixed: dict[str, Any], inputs: dict[str, Any]) -> None:
    """A flow may add inputs to a connector but not change what it sets: its host and
    credentials must not be sent elsewhere."""
    clash = sorted({alias for name in fixed for alias in _aliases(name)} & set(inputs))
    if clash:
        raise errors.InvalidInput(
            detail=f"connector '{name}' sets {', '.join(clash)}; a flow cannot change that: "
            "leave it out, or ask an admin for another connector"
        )


# Names the task handlers read for one input (runner/tasks): a connector that sets one of them
# sets them all, so that `smtp_host=` cannot redirect a connector whose host is fixed.
_ALIAS_GROUPS = (
    frozenset({"host", "hostname", "smtp_host"}),
    frozenset({"port", "smtp_port"}),
    frozenset({"user", "username", "login"}),
    frozenset({"key", "private_key"}),
    frozenset({"token", "bearer_token"}),
    frozenset({"use_tls", "starttls"}),
)


def _aliases(name: str) -> frozenset[str]:
    for group in _ALIAS_GROUPS:
        if name in group:
            return group
    return frozenset({name})


def inputs_of(ctx: Context, execution_id: str) -> dict[str, Any]:
    """The type and unmasked inputs of task execution ``execution_id``, its connector's
    settings and credentials included."""
    with ctx.db.read() as conn:
        row = connector_rows.find_task_input(conn, execution_id)
        if row is None:
            raise errors.InvalidInput(detail=f"execution '{execution_id}' is not a task")
        inputs = connectors.unseal(ctx.secret, row.inputs)
        if row.connector is not None:
            item = connector_rows.get(conn, row.connector)
            inputs.update(connectors.fixed_inputs(ctx.secret, item))
    return {"type": row.task_type, "inputs": inputs}
