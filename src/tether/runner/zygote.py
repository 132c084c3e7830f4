"""The fork server: a small process with flow_api preloaded that forks one child per execution.

Run as ``python -I -m tether.runner.zygote FD``. The first message on the Unix socket FD is
the sandbox policy (JSON, ``null`` for none); the fork server answers ``{"ready": ...}`` on
stdout once it has prepared it. Each later message asks for a child and carries three
descriptors: the child's end of its channel and the write ends of its stdout and stderr.
Answers (forked and exited pids) go to stdout as JSON lines. Forking a warm process costs
about a millisecond, a fresh interpreter tens.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import json
import os
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable

from tether.runner import child, flow_api, warmup  # noqa: F401 - preloaded for every child
from tether.runner.confinement import Confinement

MAX_POLICY_BYTES = 1024 * 1024

PR_SET_PDEATHSIG = 1
_CHILD_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)  # a child sets


@functools.cache
def _prctl() -> Callable[..., int] | None:
    # Looked up once, in the fork server: in each child, loading libc's symbol again would
    # cost about 0.2 ms and 60 page faults.
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``signum`` to this process when its parent dies (no orphans)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signum)


def _kill_children_and_exit(children: set[int], confinement: Confinement | None = None) -> None:
    # Each child leads its own process group (it calls setsid), so killing the group also
    # ends what its script started; a SIGKILL of the child alone would orphan those.
    for pid in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    if confinement is not None:
        confinement.close()
    os._exit(0)


def _report(message: dict[str, object]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def _fork_child(
    ctrl: socket.socket,
    wakeup: int,
    fds: list[int],
    children: set[int],
    confinement: Confinement | None,
) -> None:
    channel, stdout, stderr = fds
    pid = os.fork()
    if pid == 0:
        try:
            ctrl.close()
            os.close(wakeup)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _wire_standard_streams(stdout, stderr)
            if confinement is not None:
                channel = confinement.enter(channel)
            die_with_parent()  # after the account changed: that clears the setting
            child.run(socket.socket(fileno=channel))
        finally:
            os._exit(70)  # child.run never returns; never fall back into the fork server's loop
    for fd in fds:
        os.close(fd)
    children.add(pid)
    _report({"forked": pid})


def _wire_standard_streams(stdout: int, stderr: int) -> None:
    """Nothing on fd 0; fds 1 and 2 (what the script's programs write) go to the engine."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    for fd in (devnull, stdout, stderr):
        os.close(fd)


def _reap(children: set[int], confinement: Confinement | None) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        if confinement is not None:
            confinement.remove_scratch(pid)
        if os.WIFSIGNALED(status):
            _report({"exited": pid, "signal": os.WTERMSIG(status)})
        else:
            _report({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _prepare(ctrl: socket.socket) -> Confinement | None:
    """Read the policy, prepare the sandbox and warm up; tell the engine what children run as."""
    policy = json.loads(ctrl.recv(MAX_POLICY_BYTES) or b"null")
    if policy is None:
        _warm_up()
        _report({"ready": {"sandbox": "off"}})
        return None
    try:
        confinement = Confinement(policy)
    except Exception as exc:  # the fork server's edge: the engine reports it and stops
        _report({"failed": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from exc
    _warm_up(confinement)
    ready = {"sandbox": "on", "identity": confinement.identity}
    _report({"ready": {**ready, "scratch_root": confinement.scratch_root}})
    return confinement


def _warm_up(confinement: Confinement | None = None) -> None:
    """Walk each child's path here first (runner/warmup.py): its signal settings (set to what
    they are), its sandbox (rehearsed) and its execution."""
    try:
        for _ in range(warmup.ROUNDS):
            for signum in _CHILD_SIGNALS:
                signal.signal(signum, signal.getsignal(signum))
            if confinement is not None:
                confinement.rehearse()
        succeeded = warmup.warm_up()
    except Exception as exc:  # only the children's memory is at stake: say so and go on
        succeeded, why = 0, repr(exc)
    else:
        why = "its pretend executions failed"
    if succeeded < warmup.ROUNDS:
        os.write(2, f"tether fork server: the warm-up failed ({why})\n".encode())


def _drop_threading_fork_handler() -> bool:
    """Keep the threading module's after-fork handler from running in every child; whether
    it was dropped.

    threading registers it to tidy up after a fork made while other threads ran. This
    process forks from its only thread, so in a child the handler changes nothing; but it
    runs Python code that touches about 45 pages of the preloaded heap, each then copied
    into the child, which keeps them for as long as its execution sleeps: 0.18 MB of a
    sleeping child's 2 (bench/README.md, "waiting"). os.register_at_fork offers no way back;
    the interpreter keeps its handlers in a list, found here by what refers to the handler.
    Where this Python keeps them elsewhere, nothing changes but the memory.
    """
    if threading.active_count() != 1:
        return False  # a thread still runs (a warm-up gone wrong): the handler is needed
    handler = threading._after_fork  # type: ignore[attr-defined]
    dropped = False
    for referrer in gc.get_referrers(handler):
        if type(referrer) is list and handler in referrer:
            referrer.remove(handler)
            dropped = True
    return dropped


def main() -> None:
    children: set[int] = set()
    confinement: Confinement | None = None

    def stop(*_: object) -> None:
        _kill_children_and_exit(children, confinement)

    # A Ctrl-C in the terminal reaches the whole process group: the engine stops its
    # executions itself, so this process must outlive the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # When the engine dies (even by kill -9), SIGTERM arrives here and the children's
    # process groups are killed, and the scratch directories removed, before this process
    # exits; from the start, so that an engine killed while this one prepares leaves nothing.
    signal.signal(signal.SIGTERM, stop)
    die_with_parent(signal.SIGTERM)
    ctrl = socket.socket(fileno=int(sys.argv[1]))
    confinement = _prepare(ctrl)
    _drop_threading_fork_handler()
    # Everything imported so far is shared with every child until written; the collector
    # writes to each object it examines, so a collection in a child would copy the pages
    # of the whole preloaded heap. Frozen, those objects are never examined again.
    gc.collect()
    gc.freeze()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(ctrl, selectors.EVENT_READ, "ctrl")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    try:
        while True:
            for key, _ in selector.select(timeout=1.0):
                if key.data == "wake":
                    os.read(wake_read, 4096)
                    continue
                data, fds, _flags, _addr = socket.recv_fds(ctrl, 64, 3)
                if not data:  # the engine went away
                    _kill_children_and_exit(children, confinement)
                _fork_child(ctrl, wake_read, fds, children, confinement)
            _reap(children, confinement)
    except BaseException as exc:
        # A report the engine can no longer read (it died: EPIPE before the SIGTERM's
        # handler ran), or a failure of this loop: the programs the scripts started would
        # outlive their children, which die with this process, unless killed here too.
        with contextlib.suppress(OSError):
            os.write(2, f"tether fork server: stopping ({exc!r})\n".encode())
        _kill_children_and_exit(children, confinement)


if __name__ == "__main__":
    main()
