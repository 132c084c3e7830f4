"""The fork server: a small process with flow_api preloaded that forks one child per execution.

Run as ``python -m tether.runner.zygote FD``. Requests arrive on the Unix socket FD, each
carrying the child's end of its channel; answers (forked and exited pids) go to stdout as
JSON lines. Forking a warm process costs about a millisecond, a fresh interpreter tens.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import selectors
import signal
import socket
import sys
from collections.abc import Callable

from tether.runner import child, flow_api  # noqa: F401 - preloaded for every child

PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    # Looked up once, in the fork server: in each child, loading libc's symbol again would
    # cost about 0.2 ms and 60 page faults.
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``signum`` to this process when its parent dies (no orphans)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signum)


def _kill_children_and_exit(children: set[int]) -> None:
    # Each child leads its own process group (it calls setsid), so killing the group also
    # ends what its script started; a SIGKILL of the child alone would orphan those.
    for pid in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    os._exit(0)


def _report(message: dict[str, int]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def _fork_child(ctrl: socket.socket, wakeup: int, fd: int, children: set[int]) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            ctrl.close()
            os.close(wakeup)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            die_with_parent()
            devnull = os.open(os.devnull, os.O_RDWR)
            for target in (0, 1, 2):
                os.dup2(devnull, target)
            child.run(socket.socket(fileno=fd))
        finally:
            os._exit(70)  # child.run never returns; never fall back into the fork server's loop
    os.close(fd)
    children.add(pid)
    _report({"forked": pid})


def _reap(children: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        if os.WIFSIGNALED(status):
            _report({"exited": pid, "signal": os.WTERMSIG(status)})
        else:
            _report({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def main() -> None:
    children: set[int] = set()
    # When the engine dies (even by kill -9), SIGTERM arrives here and the children's
    # process groups are killed before this process exits.
    signal.signal(signal.SIGTERM, lambda *_: _kill_children_and_exit(children))
    # A Ctrl-C in the terminal reaches the whole process group: the engine stops its
    # executions itself, so this process must outlive the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(signal.SIGTERM)
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(ctrl, selectors.EVENT_READ, "ctrl")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    while True:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "wake":
                os.read(wake_read, 4096)
                continue
            data, fds, _flags, _addr = socket.recv_fds(ctrl, 64, 16)
            if not data:  # the engine went away
                _kill_children_and_exit(children)
            for fd in fds:
                _fork_child(ctrl, wake_read, fd, children)
        _reap(children)


if __name__ == "__main__":
    main()
