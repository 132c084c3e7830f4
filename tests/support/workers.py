"""Real `tether worker` processes on one PostgreSQL store, for the scale-out tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from tests.support.waiting import wait_until
from tests.support.workspace import FLOW_WRITABLE, said

RUNNING_AS = re.compile(r"running executions as process (\S+)")


@dataclass
class WorkerProcess:
    """A `tether worker` process; ``process_id`` is the id it registered under at start."""

    database_url: str
    name: str
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    process_id: str = ""
    output: list[str] = field(default_factory=list)
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self, timeout_s: float = 30.0) -> WorkerProcess:
        """Start the worker and wait until it says which process id it runs as."""
        env = {**os.environ, "TETHER_SANDBOX_WRITABLE": str(FLOW_WRITABLE)}
        command = [sys.executable, "-m", "tether.cli", "worker"]
        command += ["--database-url", self.database_url, "--name", self.name, *self.extra_args]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self._pump = threading.Thread(target=self._read_rest, daemon=True)
        self._pump.start()
        self.process_id = wait_until(
            lambda: said(RUNNING_AS, self.output, self._pump, "tether worker"),
            f"worker {self.name} to say which process it runs as",
            timeout_s,
        )
        return self

    def _read_rest(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, number: int) -> None:
        """Send ``number`` to the worker process alone (not to its group)."""
        os.kill(self.pid, number)

    def stop(self) -> None:
        """Stop the worker gracefully (SIGTERM), killing its group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with_continue = [signal.SIGCONT, signal.SIGTERM]  # a stopped one must hear it
            for number in with_continue:
                os.kill(self.pid, number)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(10)
        if self._pump is not None:
            self._pump.join(10)
            self._pump = None
        if self.process.stdout:
            self.process.stdout.close()
