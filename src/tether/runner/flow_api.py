"""The flow_api module that flow scripts import, as seen from inside the child process.

Every call is a request to the engine over the child's channel; nothing here touches the
store. Names and behaviour follow the Cloudomation flow API (see docs/flow_api.md).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import signal
import sys
import threading
import time
from typing import Any, cast

from tether import limits
from tether.runner.channel import Channel
from tether.statuses import ENDED, Status

__all__ = [
    "DependencyFailedError",
    "Execution",
    "File",
    "Flow",
    "FlowApiError",
    "InvalidInputError",
    "Message",
    "PermissionDenied",
    "ResourceNotFoundError",
    "Setting",
    "System",
    "TimeoutExceededError",
    "return_when",
]

# Options of Cloudomation's ``this.flow`` that tether accepts but that have no meaning here
# (docs/flow_api.md says why for each): never passed on to the child as inputs.
IGNORED_FLOW_OPTIONS = frozenset(
    {"location_inheritance", "protect_inputs", "protect_outputs", "wait_for_parent", "debug"}
)


class FlowApiError(Exception):
    """Base class of the errors flow_api raises."""


class DependencyFailedError(FlowApiError):
    """A child execution that was waited for did not end in ENDED_SUCCESS."""


class ResourceNotFoundError(FlowApiError):
    """A flow, execution, setting or file does not exist."""


class TimeoutExceededError(FlowApiError):
    """A wait did not finish within its timeout."""


class PermissionDenied(FlowApiError):
    """The execution may not do that."""


class InvalidInputError(FlowApiError):
    """An argument was not acceptable."""


class LifecycleSignal(BaseException):
    """Ends the execution; a BaseException so that ``except Exception`` cannot swallow it."""

    status: str = Status.ENDED_SUCCESS

    def __init__(self, message: str | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class SuccessSignal(LifecycleSignal):
    status = Status.ENDED_SUCCESS


class ErrorSignal(LifecycleSignal):
    status = Status.ENDED_ERROR


class CancelSignal(LifecycleSignal):
    status = Status.ENDED_CANCELLED


class return_when:
    ALL_SUCCEEDED = "ALL_SUCCEEDED"
    ALL_ENDED = "ALL_ENDED"
    FIRST_ENDED = "FIRST_ENDED"


_ERRORS: dict[str, type[FlowApiError]] = {
    "not_found": ResourceNotFoundError,
    "invalid_input": InvalidInputError,
    "script_invalid": InvalidInputError,
    "invalid_connector": InvalidInputError,
    "malformed_json": InvalidInputError,
    "invalid_form": InvalidInputError,
    "invalid_answer": InvalidInputError,
    "forbidden": PermissionDenied,
    "timeout": TimeoutExceededError,
    "dependency_failed": DependencyFailedError,
}
# this.sleep of at least this long is a request to the engine, which frees the execution's
# slot of --max-running meanwhile; shorter sleeps stay in the process (no round trip).
SLEEP_FREES_SLOT_S = 1.0
SLEEP_STEP_S = 30 * 24 * 3600  # one request's part of a longer sleep (the engine takes a year)
_STATUS_FIELDS = ("status", "output_value", "message")


class Engine:
    """Requests to the engine; one per child process, usable from any thread of the script.

    Whichever calling thread finds nobody reading the channel reads it, keeps its own answer
    and hands the others to the threads that asked (by request id). A single-threaded
    script thus reads its answers itself, where a cancel signal interrupts the read.
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._ids = itertools.count(1)
        self._sending = threading.Lock()
        self._state = threading.Condition()
        self._pending: set[int] = set()
        self._answers: dict[int, dict[str, Any]] = {}
        self._is_reading = False
        self._is_closed = False
        self.is_cancelled = False  # set by the cancel signal's handler (child.py)

    def call(self, op: str, **args: Any) -> Any:
        """Send a request and wait for its answer; errors come back as flow_api errors."""
        request_id = next(self._ids)
        with self._state:
            self._pending.add(request_id)
        try:
            self.send({"op": op, "rid": request_id, **args})
            answer = self._answer_to(request_id)
        finally:
            with self._state:
                # A cancel may have interrupted the wait: its answer is dropped on arrival.
                self._pending.discard(request_id)
                self._answers.pop(request_id, None)
        if answer is None:
            raise FlowApiError("the engine closed the connection to this execution")
        if "error" in answer:
            error = answer["error"]
            raise _ERRORS.get(error["kind"], FlowApiError)(error["message"])
        return answer.get("result")

    def send(self, message: dict[str, Any]) -> None:
        """Send without waiting; a cancel signal is held back so no line is cut in half."""
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            with self._sending:
                self._channel.send(message)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def end_now(self, status: str, message: str) -> None:
        """Report the end and exit the process at once: no further line of the script runs."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self.send({"op": "end", "status": status, "message": message})
        os._exit(0)

    def _answer_to(self, request_id: int) -> dict[str, Any] | None:
        with self._state:
            while self._is_reading and request_id not in self._answers:
                self._state.wait()
            if request_id in self._answers:
                return self._answers.pop(request_id)
            if self._is_closed:
                return None
            self._is_reading = True
        try:
            return self._read_until(request_id)
        finally:
            with self._state:
                self._is_reading = False
                self._state.notify_all()

    def _read_until(self, request_id: int) -> dict[str, Any] | None:
        while True:
            answer = self._channel.receive()
            with self._state:
                if answer is None:
                    self._is_closed = True
                    return None
                rid = answer.get("rid")
                if rid == request_id:
                    return answer
                if rid in self._pending:
                    self._answers[rid] = answer
                    self._state.notify_all()


class Execution:
    """An execution seen from a script: ``this`` or a child or one found by id."""

    def __init__(self, engine: Engine, execution_id: str, is_this: bool = False) -> None:
        self._engine = engine
        self.id = execution_id
        self._is_this = is_this

    def __repr__(self) -> str:
        return f"<execution {self.id}>"

    def get(self, field: str) -> Any:
        """One field of the execution's record."""
        return self._engine.call("get", id=self.id, fields=[field])[field]

    def load(self, *fields: str) -> Any:
        """One field's value, or a tuple of values for several fields."""
        record = self._engine.call("get", id=self.id, fields=list(fields))
        values = tuple(record[f] for f in fields)
        return values[0] if len(values) == 1 else values

    def save(
        self,
        output_value: dict[str, Any] | None = None,
        message: str | None = None,
        name: str | None = None,
    ) -> None:
        """Replace the outputs, set the message, and/or rename the execution."""
        self._engine.call("save", id=self.id, output_value=output_value, message=message, name=name)

    def set_output(self, key: str | None = None, value: Any = None, **outputs: Any) -> None:
        """Set keys of the outputs: ``set_output('k', v)`` or ``set_output(k=v, ...)``."""
        if key is not None:
            outputs = {key: value, **outputs}
        if not outputs:
            raise InvalidInputError("set_output needs a key and a value, or key=value pairs")
        self._engine.call("save", id=self.id, output_updates=outputs)

    def log(self, *message: Any, **fields: Any) -> None:
        """Add a timestamped entry to this execution's log (cut past its cap, saying so)."""
        text = limits.cut_text(" ".join(str(m) for m in message), limits.MAX_LOG_ENTRY_BYTES)
        self._engine.send(
            {
                "op": "log",
                "id": self.id,
                "time": time.time(),
                "message": text,
                "fields": limits.cut_fields(fields)[0],
            }
        )

    def success(self, message: str | None = None) -> None:
        """End this execution with ENDED_SUCCESS."""
        self.end(Status.ENDED_SUCCESS, message)

    def error(self, message: str | None = None) -> None:
        """End this execution with ENDED_ERROR."""
        self.end(Status.ENDED_ERROR, message)

    def end(self, status: str, message: str | None = None) -> None:
        """End this execution with ``status``."""
        if not self._is_this:
            raise InvalidInputError(
                "only the running execution can end itself: use cancel() on others"
            )
        signals: dict[str, type[LifecycleSignal]] = {
            Status.ENDED_SUCCESS: SuccessSignal,
            Status.ENDED_ERROR: ErrorSignal,
            Status.ENDED_CANCELLED: CancelSignal,
        }
        if status not in signals:
            raise InvalidInputError(
                f"'{status}' is not a final status; use one of {', '.join(signals)}"
            )
        raise signals[status](message)

    def sleep(self, seconds: float) -> None:
        """Pause; a cancel interrupts the pause.

        A script that swallowed the cancel (a bare ``except:`` around a sleep, common in
        Cloudomation flows, where a cancel cannot be caught) ends at its next sleep, cancelled,
        without running further: as there, such a loop does not keep a cancelled script going.
        """
        if self._engine.is_cancelled:
            self._engine.end_now(Status.ENDED_CANCELLED, "cancelled")
        if not isinstance(seconds, int | float) or not seconds >= SLEEP_FREES_SLOT_S:
            time.sleep(seconds)  # short (or not a number: time.sleep's own error)
            return
        # A long sleep is a wait in the engine, which then counts this execution outside
        # --max-running (as it does a wait for another execution); a cancel interrupts it.
        while seconds > 0:
            step = min(seconds, SLEEP_STEP_S)
            self._engine.call("sleep", seconds=float(step))
            seconds -= step

    def run_async(self) -> Execution:
        """Start an execution created with ``run=False``."""
        self._engine.call("run_async", id=self.id)
        return self

    def wait(
        self, return_when: str = return_when.ALL_SUCCEEDED, timeout: float | None = None
    ) -> Execution:
        """Wait until this execution ends; raise DependencyFailedError if it did not succeed."""
        _wait(self._engine, [self], return_when, timeout)
        return self

    def cancel(self) -> None:
        """Cancel this execution and its children."""
        self._engine.call("cancel", id=self.id)

    def flow(
        self,
        flow_name: str,
        *,
        run: bool = True,
        wait: bool | str = True,
        name: str | None = None,
        remote_workspace_name: str | None = None,
        input_value: dict[str, Any] | None = None,
        max_runtime: float | None = None,
        **inputs: Any,
    ) -> Execution:
        """Start a child execution of ``flow_name`` with ``input_value`` and ``inputs``."""
        return self._start_child(
            "flow",
            run=run,
            wait=wait,
            flow_name=flow_name,
            name=name,
            remote_workspace_name=remote_workspace_name,
            max_runtime_s=max_runtime,
            input_value=_inputs(input_value, inputs),
        )

    def task(
        self,
        task_type: str,
        *,
        run: bool = True,
        wait: bool | str = True,
        name: str | None = None,
        input_value: dict[str, Any] | None = None,
        max_runtime: float | None = None,
        **inputs: Any,
    ) -> Execution:
        """Run a connector of ``task_type`` (REST, SMTP, SSH, SFTP, SCP) as a child execution."""
        return self._start_child(
            "task",
            run=run,
            wait=wait,
            task_type=task_type,
            name=name,
            max_runtime_s=max_runtime,
            input_value=_inputs(input_value, inputs),
        )

    def connect(
        self,
        connector_name: str,
        *,
        run: bool = True,
        wait: bool | str = True,
        name: str | None = None,
        input_value: dict[str, Any] | None = None,
        max_runtime: float | None = None,
        **inputs: Any,
    ) -> Execution:
        """Run the named connector (its type, host and credentials) with ``inputs`` added."""
        return self._start_child(
            "task",
            run=run,
            wait=wait,
            connector=connector_name,
            name=name,
            max_runtime_s=max_runtime,
            input_value=_inputs(input_value, inputs),
        )

    def message(
        self,
        subject: str,
        message: str | None = None,
        *,
        request: str | None = None,
        body: dict[str, Any] | None = None,
        message_type: str = "INFO",
        wait: bool = True,
        timeout: float | None = None,
    ) -> Message:
        """Ask a person: a message of this execution with a form; by default waits for the
        answer (``wait=False`` returns at once)."""
        found = _new_message(self._engine, subject, message, request, body, message_type)
        return found.wait(timeout) if wait else found

    def _start_child(self, op: str, *, run: bool, wait: bool | str, **request: Any) -> Execution:
        mode = None
        if run and wait:
            mode = wait if isinstance(wait, str) else return_when.ALL_SUCCEEDED
            _check_mode(mode)
        # Started and, when asked, waited for in one request to the engine.
        answer = self._engine.call(op, parent_id=self.id, run=run, wait=mode, **request)
        child = Execution(self._engine, answer["id"])
        if mode is not None:
            _check_ended([child], answer["records"], mode)
        return child

    def wait_for(
        self,
        *executions: Execution,
        return_when: str = return_when.ALL_SUCCEEDED,
        timeout: float | None = None,
    ) -> list[Execution]:
        """Wait for several executions; return those that ended."""
        return _wait(self._engine, list(executions), return_when, timeout)


ExecutionHandle = Execution  # the name tether used before it took Cloudomation's


def _inputs(input_value: dict[str, Any] | None, inputs: dict[str, Any]) -> dict[str, Any]:
    """A child's inputs: ``input_value`` and the keyword inputs, less ignored options."""
    if input_value is not None and not isinstance(input_value, dict):
        raise InvalidInputError(f"input_value must be a dict, not {type(input_value).__name__}")
    merged = {**(input_value or {}), **inputs}
    return {k: v for k, v in merged.items() if k not in IGNORED_FLOW_OPTIONS}


def _wait(
    engine: Engine, handles: list[Execution], mode: str, timeout: float | None
) -> list[Execution]:
    _check_mode(mode)
    records = engine.call("wait", ids=[h.id for h in handles], return_when=mode, timeout=timeout)
    return _check_ended(handles, records, mode)


def _check_mode(mode: str) -> None:
    if mode not in (return_when.ALL_SUCCEEDED, return_when.ALL_ENDED, return_when.FIRST_ENDED):
        raise InvalidInputError(
            f"return_when must be one of ALL_SUCCEEDED, ALL_ENDED, FIRST_ENDED, not {mode!r}"
        )


def _check_ended(handles: list[Execution], records: dict[str, Any], mode: str) -> list[Execution]:
    """The handles that ended; raises DependencyFailedError when ALL_SUCCEEDED was not met."""
    ended = [h for h in handles if records[h.id]["status"] in ENDED]
    if mode == return_when.ALL_SUCCEEDED:
        for h in handles:
            record = records[h.id]
            if record["status"] != Status.ENDED_SUCCESS:
                raise DependencyFailedError(
                    f"child execution {h.id} ({record['name']}) ended {record['status']}: {record['message']}"
                )
    return ended


class Message:
    """A message of an execution: a form for a person; ``get('response')`` once answered."""

    def __init__(self, engine: Engine, message_id: str) -> None:
        self._engine = engine
        self.id = message_id
        self._answered: dict[str, Any] | None = None  # an answered message never changes

    def __repr__(self) -> str:
        return f"<message {self.id}>"

    def get(self, field: str) -> Any:
        """One field: id, execution_id, subject, message_type, body, status, response,
        answered_by, created_at, answered_at; else a value of the answer by its key."""
        record = self._answered or self._engine.call("message_get", id=self.id)
        if field in record:
            return record[field]
        # Read like the answer too (Cloudomation's this.message may hand back the answer):
        # a key of the form that is not a field of the message.
        if field in (record["response"] or {}):
            return record["response"][field]
        raise InvalidInputError(f"a message has the fields {', '.join(record)}, not {field!r}")

    def load(self, *fields: str) -> Any:
        values = tuple(self.get(f) for f in fields)
        return values[0] if len(values) == 1 else values

    def wait(self, timeout: float | None = None) -> Message:
        """Block until a person answered; TimeoutExceededError after ``timeout`` seconds."""
        if self._answered is None:
            self._answered = self._engine.call("message_wait", id=self.id, timeout=timeout)
        return self

    def __getitem__(self, key: str) -> Any:
        """A value of the answer: ``message['string']`` is ``message.get('response')['string']``."""
        response = self.get("response")
        if response is None:
            raise InvalidInputError(f"message {self.id} has no answer yet: wait() for it first")
        return response[key]


def _new_message(
    engine: Engine,
    subject: str,
    message: str | None,
    request: str | None,
    body: dict[str, Any] | None,
    message_type: str,
) -> Message:
    message_id = engine.call(
        "message",
        subject=subject,
        message=message,
        request=request,
        body=body,
        message_type=message_type,
    )
    return Message(engine, message_id)


class Setting:
    """A named setting, shared by all executions of the workspace."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    def __repr__(self) -> str:
        return f"<setting {self.name}>"

    def get(self, field: str = "value") -> Any:
        if field != "value":
            raise InvalidInputError(f"a setting has the field 'value', not {field!r}")
        return self._engine.call("setting_get", name=self.name)

    load = get

    def save(self, value: Any = None) -> None:
        self._engine.call("setting_save", name=self.name, value=value)

    def exists(self) -> bool:
        return bool(self._engine.call("setting_exists", name=self.name))

    def delete(self) -> None:
        self._engine.call("setting_delete", name=self.name)

    def acquire(self, timeout: float | None = None) -> Setting:
        """Take this setting's lock, waiting while another execution holds it.

        The lock is released by ``release()`` or when the holding execution ends.
        """
        self._engine.call("setting_acquire", name=self.name, timeout=timeout)
        return self

    def release(self) -> None:
        """Release this setting's lock, held by this execution."""
        self._engine.call("setting_release", name=self.name)

    def __enter__(self) -> Setting:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


class File:
    """A named file of the workspace: text, bytes or base64 content."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    def __repr__(self) -> str:
        return f"<file {self.name}>"

    def get(self, field: str = "content") -> Any:
        """``content`` (text), ``content_bytes`` or ``content_base64``."""
        fields = ("content", "content_bytes", "content_base64")
        if field not in fields:
            raise InvalidInputError(f"a file has the fields {', '.join(fields)}, not {field!r}")
        encoded = self._engine.call("file_get", name=self.name)
        if field == "content_base64":
            return encoded
        raw = base64.b64decode(encoded)
        return raw if field == "content_bytes" else raw.decode()

    load = get

    def get_text(self) -> str:
        return cast(str, self.get("content"))

    def get_bytes(self) -> bytes:
        return cast(bytes, self.get("content_bytes"))

    get_text_content = get_text
    get_bytes_content = get_bytes

    def get_base64_content(self) -> str:
        return cast(str, self.get("content_base64"))

    def save(self, content: str | bytes | None = None, content_base64: str | None = None) -> None:
        if content_base64 is None:
            raw = content.encode() if isinstance(content, str) else bytes(content or b"")
            content_base64 = base64.b64encode(raw).decode()
        self._engine.call("file_save", name=self.name, content_base64=content_base64)

    def save_text_content(self, content: str) -> None:
        if not isinstance(content, str):
            raise InvalidInputError(f"save_text_content takes a str, not {type(content).__name__}")
        self.save(content=content)

    def save_bytes_content(self, content: bytes) -> None:
        if not isinstance(content, bytes | bytearray | memoryview):
            raise InvalidInputError(f"save_bytes_content takes bytes, not {type(content).__name__}")
        self.save(content=bytes(content))

    def save_base64_content(self, content: str) -> None:
        self.save(content_base64=content)

    def exists(self) -> bool:
        return bool(self._engine.call("file_exists", name=self.name))

    def delete(self) -> None:
        self._engine.call("file_delete", name=self.name)


class Flow:
    """A flow of the workspace; its id is its name (tether keys flows by name)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name
        self.id = name

    def __repr__(self) -> str:
        return f"<flow {self.name}>"

    def get(self, field: str) -> Any:
        record = self._engine.call("flow_get", name=self.name)
        if field not in record:
            raise InvalidInputError(f"a flow has the fields {', '.join(record)}, not {field!r}")
        return record[field]

    load = get

    def save(self, script: str | None = None, description: str | None = None) -> None:
        """Change the flow's script and/or description (a script must compile)."""
        self._engine.call("flow_save", name=self.name, script=script, description=description)


# The names tether used before it took Cloudomation's.
SettingHandle, FileHandle, FlowHandle = Setting, File, Flow

_EXECUTION_FILTERS = frozenset({"status", "flow_name", "parent_id", "origin", "name"})


class System:
    """The ``system`` argument of a handler: the workspace's shared things."""

    return_when = return_when

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        return "<system>"

    def setting(self, name: str) -> Setting:
        return Setting(self._engine, name)

    def file(self, name: str) -> File:
        return File(self._engine, name)

    def files(self, name_prefix: str | None = None) -> list[File]:
        """The workspace's files (those whose name starts with ``name_prefix``), by name."""
        names = self._engine.call("file_list", name_prefix=name_prefix)
        return [File(self._engine, name) for name in names]

    def settings(self, name_prefix: str | None = None) -> list[Setting]:
        """The workspace's settings (those whose name starts with ``name_prefix``), by name."""
        names = self._engine.call("setting_list", name_prefix=name_prefix)
        return [Setting(self._engine, name) for name in names]

    def message(
        self,
        subject: str,
        message: str | None = None,
        *,
        request: str | None = None,
        body: dict[str, Any] | None = None,
        message_type: str = "INFO",
    ) -> Message:
        """Ask a person: a message of this execution with a form; ``.wait()`` for the answer."""
        return _new_message(self._engine, subject, message, request, body, message_type)

    def execution(self, execution_id: str) -> Execution:
        self._engine.call("get", id=execution_id, fields=["id"])
        return Execution(self._engine, execution_id)

    def executions(self, *, limit: int = 100, **filters: Any) -> list[Execution]:
        """Executions matching ``filters`` (status, flow_name, parent_id, origin, name),
        newest first, at most ``limit``."""
        unknown = sorted(set(filters) - _EXECUTION_FILTERS)
        if unknown:
            raise InvalidInputError(
                f"executions() cannot filter by {unknown[0]!r}; "
                f"filters are {', '.join(sorted(_EXECUTION_FILTERS))}"
            )
        ids = self._engine.call("execution_list", filters=filters, limit=limit)
        return [Execution(self._engine, i) for i in ids]

    def flow(self, name: str, by: str = "name") -> Flow:
        """A flow by name; ``by='id'`` is accepted: a flow's id is its name."""
        if by not in ("name", "id"):
            raise InvalidInputError(f"system.flow(..., by=) takes 'name' or 'id', not {by!r}")
        self._engine.call("flow_get", name=name)
        return Flow(self._engine, name)
