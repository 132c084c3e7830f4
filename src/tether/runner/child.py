"""The child side of one execution: receive the script, run its handler, report the end.

Runs in a process forked by the fork server; talks to the engine only through its channel.
"""

from __future__ import annotations

import inspect
import io
import linecache
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

from tether import limits
from tether.runner import flow_api
from tether.runner.channel import Channel
from tether.statuses import Status


class LogStream(io.TextIOBase):
    """A text stream whose complete lines become log entries of the execution."""

    def __init__(self, engine: flow_api.Engine, execution_id: str, stream: str) -> None:
        self._engine = engine
        self._id = execution_id
        self._fields = {} if stream == "stdout" else {"stream": stream}
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._send(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._send(self._pending)
            self._pending = ""

    def _send(self, line: str) -> None:
        message = {
            "op": "log",
            "id": self._id,
            "time": time.time(),
            "message": limits.cut_text(line, limits.MAX_LOG_ENTRY_BYTES),
            "fields": self._fields,
        }
        self._engine.send(message)


def _cancel_handler(engine: flow_api.Engine) -> Any:
    def raise_cancel(_signum: int, _frame: Any) -> None:
        # One cancel signal is enough: later ones are ignored so that finally blocks can run.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        engine.is_cancelled = True  # a script that swallows it ends at its next this.sleep
        raise flow_api.CancelSignal("cancelled")

    return raise_cancel


def run(sock: socket.socket) -> None:
    """Run one execution over ``sock`` and exit the process."""
    os.setsid()
    channel = Channel(sock)
    engine = flow_api.Engine(channel)
    signal.signal(signal.SIGUSR1, _cancel_handler(engine))
    sys.modules["flow_api"] = flow_api  # scripts write `import flow_api`
    status: str = Status.ENDED_ERROR
    message: str | None = "the execution did not start"
    try:
        order = channel.receive()
        if order is not None:
            status, message = execute(engine, order)
    except flow_api.LifecycleSignal as signal_:
        status, message = signal_.status, signal_.message
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _release_standard_streams()
        if message is not None:  # the engine cuts it too; cut here it cannot overflow the channel
            message = limits.cut_text(str(message), limits.MAX_EXECUTION_MESSAGE_BYTES)
        engine.send({"op": "end", "status": status, "message": message})
        os._exit(0)


def _release_standard_streams() -> None:
    """Close fds 1 and 2 before reporting the end, so that the engine sees their end at once
    (unless a program the script started still holds them)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def execute(engine: flow_api.Engine, order: dict[str, Any]) -> tuple[str, str | None]:
    execution = order["execution"]
    this = flow_api.Execution(engine, execution["id"], is_this=True)
    system = flow_api.System(engine)
    sys.stdout = LogStream(engine, execution["id"], "stdout")
    sys.stderr = LogStream(engine, execution["id"], "stderr")
    filename = f"<flow {execution['flow_name'] or execution['name']}>"
    script = order["script"]
    linecache.cache[filename] = (len(script), None, script.splitlines(True), filename)
    try:
        namespace: dict[str, Any] = {"__name__": "__flow__", "__file__": filename}
        # dont_inherit: the script gets none of this module's `from __future__` flags, so its
        # annotations are evaluated as the script's author expects (typing.get_type_hints).
        exec(compile(script, filename, "exec", dont_inherit=True), namespace)
        handler = namespace.get("handler")
        if not callable(handler):
            return (
                Status.ENDED_ERROR,
                "the script defines no handler: add 'def handler(system, this):'",
            )
        if _parameter_count(handler) >= 3:
            handler(system, this, execution["input_value"])
        else:
            handler(system, this)
        return Status.ENDED_SUCCESS, None
    except flow_api.LifecycleSignal as signal_:
        return signal_.status, signal_.message
    except MemoryError:
        return Status.ENDED_ERROR, "the script ran out of memory (MemoryError)"
    except SystemExit as exc:
        # sys.exit() ends the script as a shell would read it: 0 or None succeeds.
        if exc.code in (0, None):
            return Status.ENDED_SUCCESS, None
        return Status.ENDED_ERROR, f"the script called sys.exit({exc.code!r})"
    except BaseException as exc:
        return Status.ENDED_ERROR, _script_traceback(exc, filename)
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()


def _parameter_count(handler: Any) -> int:
    if inspect.isfunction(handler) and not hasattr(handler, "__wrapped__"):
        # A plain function's count, read from its code: inspect.signature costs a forked
        # child about 0.15 ms and 100 page faults.
        code = handler.__code__
        is_star = bool(code.co_flags & inspect.CO_VARARGS)
        is_star_star = bool(code.co_flags & inspect.CO_VARKEYWORDS)
        return code.co_argcount + code.co_kwonlyargcount + is_star + is_star_star
    try:
        return len(inspect.signature(handler).parameters)
    except (TypeError, ValueError):
        return 2


# The engine's own frames (flow_api and the child) are noise in a script's traceback.
ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(flow_api.__file__)))


def _script_traceback(exc: BaseException, filename: str) -> str:
    """The traceback from the script's first frame on, without the engine's own frames, and
    flow_api's errors named as scripts import them."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    shown = traceback.TracebackException(type(exc), exc, tb or exc.__traceback__)
    _drop_engine_frames(shown, set())
    return "".join(shown.format()).replace(f"{flow_api.__name__}.", "flow_api.").rstrip()


def _drop_engine_frames(shown: traceback.TracebackException, done: set[int]) -> None:
    """Leave out the engine's frames, also of the exceptions that caused this one."""
    if id(shown) in done:
        return
    done.add(id(shown))
    kept = [frame for frame in shown.stack if not frame.filename.startswith(ENGINE_DIR)]
    if kept:  # an error of the engine alone keeps its frames: they are all there is
        shown.stack = traceback.StackSummary.from_list(kept)
    for cause in (shown.__cause__, shown.__context__):
        if cause is not None:
            _drop_engine_frames(cause, done)
