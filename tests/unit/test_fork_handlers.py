"""The fork server keeps threading's after-fork handler out of its children (memory), and
threads still work in a child that did not run it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a fresh interpreter: the handler list is the process's own, and pytest's process
# has threads of its own.
FORK_AND_LOOK = textwrap.dedent(
    """
    import os, sys, threading
    from tether.runner import zygote

    if sys.argv[1] == "drop":
        assert zygote._drop_threading_fork_handler()
    lock = id(threading._active_limbo_lock)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The handler replaces this lock: the same object means the handler did not run.
        untouched = id(threading._active_limbo_lock) == lock
        seen = []
        thread = threading.Thread(target=lambda: seen.append(threading.current_thread()))
        thread.start()
        thread.join()
        works = seen == [thread] and threading.current_thread() is threading.main_thread()
        os.write(write, f"untouched={untouched} threads_work={works}".encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(read, 100).decode())
    """
)


def _fork_and_look(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", FORK_AND_LOOK, mode], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_child_skips_threadings_handler_and_its_threads_still_work() -> None:
    assert _fork_and_look("drop") == "untouched=True threads_work=True"


def test_control_the_handler_runs_in_a_child_unless_dropped() -> None:
    assert _fork_and_look("keep") == "untouched=False threads_work=True"


def test_the_handler_stays_while_another_thread_runs() -> None:
    script = textwrap.dedent(
        """
        import threading
        from tether.runner import zygote

        release = threading.Event()
        other = threading.Thread(target=release.wait)
        other.start()
        print(zygote._drop_threading_fork_handler())
        release.set()
        other.join()
        print(zygote._drop_threading_fork_handler())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
