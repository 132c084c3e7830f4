"""The flow_api module that flow scripts import, as seen from inside the child process.

Every call is a request to the engine over the child's channel; nothing here touches the
store. Names and behaviour follow the Cloudomation flow API (see docs/flow_api.md).
"""

from __future__ import annotations

import base64
import itertools
import signal
import threading
import time
from typing import Any

from tether import limits
from tether.runner.channel import Channel

__all__ = [
    "DependencyFailedError",
    "FlowApiError",
    "InvalidInputError",
    "PermissionDenied",
    "ResourceNotFoundError",
    "TimeoutExceededError",
    "return_when",
]


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

    status = "ENDED_SUCCESS"

    def __init__(self, message: str | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class SuccessSignal(LifecycleSignal):
    status = "ENDED_SUCCESS"


class ErrorSignal(LifecycleSignal):
    status = "ENDED_ERROR"


class CancelSignal(LifecycleSignal):
    status = "ENDED_CANCELLED"


class return_when:
    ALL_SUCCEEDED = "ALL_SUCCEEDED"
    ALL_ENDED = "ALL_ENDED"
    FIRST_ENDED = "FIRST_ENDED"


_ERRORS: dict[str, type[FlowApiError]] = {
    "not_found": ResourceNotFoundError,
    "invalid_input": InvalidInputError,
    "script_invalid": InvalidInputError,
    "malformed_json": InvalidInputError,
    "forbidden": PermissionDenied,
    "timeout": TimeoutExceededError,
    "dependency_failed": DependencyFailedError,
}
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


class ExecutionHandle:
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

    def save(self, output_value: dict[str, Any] | None = None, message: str | None = None) -> None:
        """Replace the outputs and/or set the message."""
        self._engine.call("save", id=self.id, output_value=output_value, message=message)

    def set_output(self, key: str, value: Any) -> None:
        """Set one key of the outputs."""
        self._engine.call("save", id=self.id, output_updates={key: value})

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
        self.end("ENDED_SUCCESS", message)

    def error(self, message: str | None = None) -> None:
        """End this execution with ENDED_ERROR."""
        self.end("ENDED_ERROR", message)

    def end(self, status: str, message: str | None = None) -> None:
        """End this execution with ``status``."""
        if not self._is_this:
            raise InvalidInputError(
                "only the running execution can end itself: use cancel() on others"
            )
        signals = {
            "ENDED_SUCCESS": SuccessSignal,
            "ENDED_ERROR": ErrorSignal,
            "ENDED_CANCELLED": CancelSignal,
        }
        if status not in signals:
            raise InvalidInputError(
                f"'{status}' is not a final status; use one of {', '.join(signals)}"
            )
        raise signals[status](message)

    def sleep(self, seconds: float) -> None:
        """Pause; a cancel interrupts the pause."""
        time.sleep(seconds)

    def run_async(self) -> ExecutionHandle:
        """Start an execution created with ``run=False``."""
        self._engine.call("run_async", id=self.id)
        return self

    def wait(
        self, return_when: str = return_when.ALL_SUCCEEDED, timeout: float | None = None
    ) -> ExecutionHandle:
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
        **inputs: Any,
    ) -> ExecutionHandle:
        """Start a child execution of ``flow_name`` with ``inputs``."""
        mode = None
        if run and wait:
            mode = wait if isinstance(wait, str) else return_when.ALL_SUCCEEDED
            _check_mode(mode)
        # Started and, when asked, waited for in one request to the engine.
        answer = self._engine.call(
            "flow",
            parent_id=self.id,
            flow_name=flow_name,
            run=run,
            wait=mode,
            name=name,
            remote_workspace_name=remote_workspace_name,
            input_value=inputs,
        )
        child = ExecutionHandle(self._engine, answer["id"])
        if mode is not None:
            _check_ended([child], answer["records"], mode)
        return child

    def wait_for(
        self,
        *executions: ExecutionHandle,
        return_when: str = return_when.ALL_SUCCEEDED,
        timeout: float | None = None,
    ) -> list[ExecutionHandle]:
        """Wait for several executions; return those that ended."""
        return _wait(self._engine, list(executions), return_when, timeout)


def _wait(
    engine: Engine, handles: list[ExecutionHandle], mode: str, timeout: float | None
) -> list[ExecutionHandle]:
    _check_mode(mode)
    records = engine.call("wait", ids=[h.id for h in handles], return_when=mode, timeout=timeout)
    return _check_ended(handles, records, mode)


def _check_mode(mode: str) -> None:
    if mode not in (return_when.ALL_SUCCEEDED, return_when.ALL_ENDED, return_when.FIRST_ENDED):
        raise InvalidInputError(
            f"return_when must be one of ALL_SUCCEEDED, ALL_ENDED, FIRST_ENDED, not {mode!r}"
        )


def _check_ended(
    handles: list[ExecutionHandle], records: dict[str, Any], mode: str
) -> list[ExecutionHandle]:
    """The handles that ended; raises DependencyFailedError when ALL_SUCCEEDED was not met."""
    ended = [h for h in handles if records[h.id]["status"].startswith("ENDED_")]
    if mode == return_when.ALL_SUCCEEDED:
        for h in handles:
            record = records[h.id]
            if record["status"] != "ENDED_SUCCESS":
                raise DependencyFailedError(
                    f"child execution {h.id} ({record['name']}) ended {record['status']}: {record['message']}"
                )
    return ended


class SettingHandle:
    """A named setting, shared by all executions of the workspace."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

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


class FileHandle:
    """A named file of the workspace: text, bytes or base64 content."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    def get(self, field: str = "content") -> Any:
        """``content`` (text), ``content_bytes`` or ``content_base64``."""
        encoded = self._engine.call("file_get", name=self.name)
        raw = base64.b64decode(encoded)
        fields = {
            "content": lambda: raw.decode(),
            "content_bytes": lambda: raw,
            "content_base64": lambda: encoded,
        }
        if field not in fields:
            raise InvalidInputError(f"a file has the fields {', '.join(fields)}, not {field!r}")
        return fields[field]()

    load = get

    def get_text(self) -> str:
        return self.get("content")

    def get_bytes(self) -> bytes:
        return self.get("content_bytes")

    def save(self, content: str | bytes | None = None, content_base64: str | None = None) -> None:
        if content_base64 is None:
            raw = content.encode() if isinstance(content, str) else bytes(content or b"")
            content_base64 = base64.b64encode(raw).decode()
        self._engine.call("file_save", name=self.name, content_base64=content_base64)

    def exists(self) -> bool:
        return bool(self._engine.call("file_exists", name=self.name))

    def delete(self) -> None:
        self._engine.call("file_delete", name=self.name)


class FlowHandle:
    """A flow of the workspace."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    def get(self, field: str) -> Any:
        return self._engine.call("flow_get", name=self.name)[field]

    load = get


class System:
    """The ``system`` argument of a handler: the workspace's shared things."""

    return_when = return_when

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def setting(self, name: str) -> SettingHandle:
        return SettingHandle(self._engine, name)

    def file(self, name: str) -> FileHandle:
        return FileHandle(self._engine, name)

    def execution(self, execution_id: str) -> ExecutionHandle:
        self._engine.call("get", id=execution_id, fields=["id"])
        return ExecutionHandle(self._engine, execution_id)

    def flow(self, name: str) -> FlowHandle:
        self._engine.call("flow_get", name=name)
        return FlowHandle(self._engine, name)
