"""The engine's answers to a child's requests: each flow_api call becomes a use case.

Every request is authorised as the execution's owner, with the permission the matching REST
call needs: a flow can do through flow_api what its owner can do through the REST API, no
more. Database work runs in worker threads so that the event loop keeps serving other children.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

from tether import errors
from tether.actions import events, files, flows, messages, settings, tasks, users
from tether.actions import executions as execution_actions
from tether.actions.context import Context
from tether.statuses import ENDED, Event
from tether.store import executions
from tether.store.executions import Execution

# The longest sleep one request asks for (flow_api splits longer ones): asyncio's timers
# take any finite number, but past some years the loop's clock arithmetic loses meaning.
MAX_SLEEP_S = 365 * 24 * 3600
POLL_S = 1.0  # re-read the store this often while waiting, for changes made by other processes


class TimeoutExceeded(errors.TetherError):
    """the wait did not finish within {timeout} s"""

    kind = "timeout"


# The permission of the REST calls that flow_api's requests match (actions.users.PERMISSIONS).
USE = "use the workspace"
EXECUTION_FILTERS = frozenset({"status", "flow_name", "parent_id", "origin", "name"})


def message_record(item: Any) -> dict[str, Any]:
    """What a script reads of a message (``message.get(field)``)."""
    return {
        "id": item.id,
        "execution_id": item.execution_id,
        "subject": item.subject,
        "message_type": item.message_type,
        "body": item.body,
        "status": item.status,
        "response": item.response,
        "answered_by": item.answered_by,
        "created_at": item.created_at,
        "answered_at": item.answered_at,
    }


class Requests:
    """Answers the requests of one running execution."""

    def __init__(
        self,
        ctx: Context,
        execution: Execution,
        rights: users.OwnerRights,
        on_wait: Callable[[bool], None],
    ) -> None:
        self._ctx = ctx
        self._id = execution.id
        self._owner = execution.owner
        self._rights = rights  # shared by the runner's executions
        self._on_wait = on_wait  # told when the execution starts and stops waiting

    async def answer(self, request: dict[str, Any]) -> Any:
        """The result of one request; raises TetherError for the child to see."""
        handler = getattr(self, "op_" + str(request.get("op")), None)
        if handler is None:
            raise errors.InvalidInput(detail=f"unknown request {request.get('op')!r}")
        return await handler(request)

    async def _db(
        self, permission: str, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """``function(ctx, ...)`` in a worker thread, once the owner holds ``permission``."""
        return await asyncio.to_thread(self._as_owner, permission, function, *args, **kwargs)

    def _as_owner(
        self, permission: str, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        self._rights.authorize(self._owner, permission)
        return function(self._ctx, *args, **kwargs)

    def _check_own(self, execution_id: Any, action: str) -> None:
        """Refuse changing another execution than this one: no REST call can do that."""
        if execution_id != self._id:
            raise errors.OwnerForbidden(
                owner=self._owner or "",
                action=action,
                detail=f"a flow may change only its own execution, not '{execution_id}'",
            )

    async def op_get(self, request: dict[str, Any]) -> dict[str, Any]:
        record = executions.as_record(await self._db(USE, execution_actions.get, request["id"]))
        unknown = [f for f in request["fields"] if f not in record]
        if unknown:
            raise errors.InvalidInput(
                detail=f"an execution has no field {unknown[0]!r}; fields are {', '.join(record)}"
            )
        return {f: record[f] for f in request["fields"]}

    async def op_save(self, request: dict[str, Any]) -> None:
        self._check_own(request["id"], "save outputs or a message")
        await self._db(
            USE,
            execution_actions.save,
            request["id"],
            output_value=request.get("output_value"),
            output_updates=request.get("output_updates"),
            message=request.get("message"),
            name=request.get("name"),
        )

    async def op_flow(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._start_child(
            request,
            execution_actions.start,
            flow_name=request["flow_name"],
            remote_workspace_name=request.get("remote_workspace_name"),
            owner=self._owner,
        )

    async def op_task(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._start_child(
            request,
            tasks.start,
            task_type=request.get("task_type"),
            connector=request.get("connector"),
        )

    async def op_task_inputs(self, request: dict[str, Any]) -> dict[str, Any]:
        # Only a task's own process reads its unmasked inputs.
        return cast("dict[str, Any]", await self._db(USE, tasks.inputs_of, self._id))

    async def _start_child(
        self, request: dict[str, Any], start: Callable[..., Any], **args: Any
    ) -> dict[str, Any]:
        """Start a child with ``start(ctx, ...)`` and, when asked, wait for its end."""
        run = bool(request.get("run", True))
        mode = request.get("wait") if run else None
        child_id = str(uuid.uuid4())
        # Watched before it exists: a quick child can end before the start's answer is read.
        with self._ctx.events.watch(Event.ENDED, [child_id]) as watch:
            await self._db(
                USE,
                start,
                input_value=request.get("input_value"),
                name=request.get("name"),
                parent_id=self._id,
                run=run,
                max_runtime_s=request.get("max_runtime_s"),
                execution_id=child_id,
                **args,
            )
            if not mode:
                return {"id": child_id}
            # Started and waited for in one request; the first look waits for a wake-up.
            return {"id": child_id, "records": await self._waiting([child_id], mode, None, watch)}

    async def op_run_async(self, request: dict[str, Any]) -> None:
        await self._db(USE, execution_actions.run_pending, request["id"], starter_id=self._id)

    async def op_cancel(self, request: dict[str, Any]) -> None:
        await self._db(USE, execution_actions.cancel, request["id"])

    async def op_sleep(self, request: dict[str, Any]) -> None:
        """this.sleep of at least flow_api.SLEEP_FREES_SLOT_S: the wait holds no slot."""
        seconds = request.get("seconds")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= MAX_SLEEP_S
        ):
            raise errors.InvalidInput(
                detail=f"sleep takes a number of seconds from 0 to {MAX_SLEEP_S}, not {seconds!r}"
            )
        self._on_wait(True)  # a sleeping execution holds no slot of max_running
        try:
            await asyncio.sleep(seconds)
        finally:
            self._on_wait(False)

    async def op_wait(self, request: dict[str, Any]) -> dict[str, Any]:
        ids = list(dict.fromkeys(request["ids"]))
        mode = request.get("return_when", "ALL_SUCCEEDED")
        with self._ctx.events.watch(Event.ENDED, ids) as watch:
            return await self._waiting(ids, mode, request.get("timeout"), watch, is_fresh=False)

    async def _waiting(
        self,
        ids: list[str],
        mode: str,
        timeout: float | None,
        watch: events.Watch,
        *,
        is_fresh: bool = True,
    ) -> dict[str, Any]:
        """The records of ``ids`` once ``mode`` is satisfied, woken by ``watch``.

        ``is_fresh``: the executions were just queued, so the first look waits for a wake-up
        (the periodic look covers one that never comes).
        """
        self._on_wait(True)
        try:
            deadline = None if timeout is None else time.monotonic() + float(timeout)
            ended: set[str] = set()  # an ended execution never changes status again
            if is_fresh:
                await watch.wait(POLL_S)
            while True:
                open_ids = [i for i in ids if i not in ended]
                records = await asyncio.to_thread(self._look, ids, open_ids, mode, ended)
                if records is not None:
                    return records
                remaining = POLL_S if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutExceeded(timeout=timeout)
                await watch.wait(min(POLL_S, remaining))
        finally:
            self._on_wait(False)

    def _look(
        self, ids: list[str], open_ids: list[str], mode: str, ended: set[str]
    ) -> dict[str, Any] | None:
        """Note which of ``open_ids`` ended; all records once the wait is over, else None."""
        self._rights.authorize(self._owner, USE)
        with self._ctx.db.read() as conn:
            found = executions.statuses(conn, open_ids)
            missing = [i for i in open_ids if i not in found]
            if missing:
                raise errors.ExecutionNotFound(id=missing[0])
            ended.update(i for i, status in found.items() if status in ENDED)
            if not ended or (mode != "FIRST_ENDED" and len(ended) < len(ids)):
                return None
            return {i: executions.as_record(ex) for i, ex in executions.get_many(conn, ids).items()}

    async def op_message(self, request: dict[str, Any]) -> str:
        item = await self._db(
            USE,
            messages.create,
            self._id,
            subject=request.get("subject"),
            message_type=request.get("message_type"),
            body=request.get("body"),
            message=request.get("message"),
            request=request.get("request"),
        )
        return str(item.id)

    async def op_message_get(self, request: dict[str, Any]) -> dict[str, Any]:
        return message_record(await self._db(USE, messages.get, request["id"]))

    async def op_message_wait(self, request: dict[str, Any]) -> dict[str, Any]:
        """The message once it is answered; an answer in any process wakes the wait."""
        message_id, timeout = str(request["id"]), request.get("timeout")
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        is_waiting = False
        try:
            with self._ctx.events.watch(Event.MESSAGE, [message_id]) as watch:
                while True:
                    item = await self._db(USE, messages.get, message_id)
                    if item.answered_at is not None:
                        return message_record(item)
                    if not is_waiting:  # a waiting execution holds no slot of max_running
                        is_waiting = True
                        self._on_wait(True)
                    remaining = POLL_S if deadline is None else deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutExceeded(timeout=timeout)
                    await watch.wait(min(POLL_S, remaining))
        finally:
            if is_waiting:
                self._on_wait(False)

    async def op_setting_get(self, request: dict[str, Any]) -> Any:
        return await self._db(USE, settings.get, request["name"])

    async def op_setting_save(self, request: dict[str, Any]) -> None:
        await self._db(USE, settings.put, request["name"], request.get("value"))

    async def op_setting_exists(self, request: dict[str, Any]) -> bool:
        return bool(await self._db(USE, settings.exists, request["name"]))

    async def op_setting_delete(self, request: dict[str, Any]) -> None:
        await self._db(USE, settings.delete, request["name"])

    async def op_setting_list(self, request: dict[str, Any]) -> list[str]:
        return list(await self._db(USE, settings.names, request.get("name_prefix")))

    async def op_setting_acquire(self, request: dict[str, Any]) -> None:
        name, timeout = request["name"], request.get("timeout")
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        is_waiting = False
        try:
            while True:
                with self._ctx.events.watch(Event.LOCK, [name]) as watch:
                    holder = await self._db(USE, settings.try_acquire, name, self._id)
                    if holder is None:
                        return
                    if not is_waiting:  # a waiting execution holds no slot of max_running
                        is_waiting = True
                        self._on_wait(True)
                    # A holder that ends without releasing is seen by the periodic look.
                    remaining = POLL_S if deadline is None else deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutExceeded(timeout=timeout)
                    await watch.wait(min(POLL_S, remaining))
        finally:
            if is_waiting:
                self._on_wait(False)

    async def op_setting_release(self, request: dict[str, Any]) -> None:
        await self._db(USE, settings.release, request["name"], self._id)

    async def op_file_list(self, request: dict[str, Any]) -> list[str]:
        return list(await self._db(USE, files.names, request.get("name_prefix")))

    async def op_execution_list(self, request: dict[str, Any]) -> list[str]:
        filters = {
            k: v
            for k, v in dict(request.get("filters") or {}).items()
            if k in EXECUTION_FILTERS and v is not None
        }
        limit = max(1, min(int(request.get("limit") or 100), 1000))
        return list(await self._db(USE, execution_actions.list_ids, limit, **filters))

    async def op_file_get(self, request: dict[str, Any]) -> str:
        return base64.b64encode(await self._db(USE, files.get, request["name"])).decode()

    async def op_file_save(self, request: dict[str, Any]) -> None:
        try:
            content = base64.b64decode(request["content_base64"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise errors.InvalidInput(detail="content_base64 is not valid base64") from exc
        await self._db(USE, files.put, request["name"], content)

    async def op_file_exists(self, request: dict[str, Any]) -> bool:
        return bool(await self._db(USE, files.exists, request["name"]))

    async def op_file_delete(self, request: dict[str, Any]) -> None:
        await self._db(USE, files.delete, request["name"])

    async def op_flow_get(self, request: dict[str, Any]) -> dict[str, Any]:
        flow = await self._db(USE, flows.get, request["name"])
        return {
            "id": flow.name,
            "name": flow.name,
            "script": flow.script,
            "description": flow.description,
        }

    async def op_flow_save(self, request: dict[str, Any]) -> None:
        # As PATCH /flow/{name}: the owner may use the workspace.
        await self._db(
            USE,
            flows.change,
            request["name"],
            script=request.get("script"),
            description=request.get("description"),
        )
