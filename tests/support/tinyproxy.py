"""A real HTTP proxy for the tests: Debian's tinyproxy on a free loopback port.

It can ask for credentials (``credentials``) or refuse every client (``is_refusing``); its log
shows each CONNECT, so that a test can tell that the traffic went through it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.support.waiting import wait_until

START_TIMEOUT_S = 10.0


def missing() -> str | None:
    """Why no proxy can be started here, or None."""
    if shutil.which("tinyproxy") is None:
        return "tinyproxy is not installed (./dev and .ci/run install Debian's tinyproxy)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Tinyproxy:
    """One tinyproxy process; ``url`` is how a client names it (credentials not included)."""

    def __init__(
        self, *, credentials: tuple[str, str] | None = None, is_refusing: bool = False
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="tether-tinyproxy-"))
        self._dir.chmod(0o755)
        self.port = _free_port()
        self.log_file = self._dir / "tinyproxy.log"
        self.log_file.touch(mode=0o666)
        self.log_file.chmod(0o666)  # it writes as nobody once it has dropped root
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 600",
            f'LogFile "{self.log_file}"',
            "LogLevel Connect",
            "MaxClients 50",
            "DisableViaHeader Yes",
            # A refusing proxy admits only an address no test connects from.
            f"Allow {'192.0.2.254' if is_refusing else '127.0.0.1'}",
        ]
        if credentials is not None:
            lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
        config = self._dir / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        self._process = subprocess.Popen(
            ["tinyproxy", "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._wait_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connects(self) -> list[str]:
        """The CONNECT requests it has seen, as its log tells them ("Request (...): CONNECT h:p")."""
        lines = self.log_file.read_text().splitlines()
        return [line.split("): ", 1)[1] for line in lines if "): CONNECT " in line]

    def _wait_listening(self) -> None:
        def listening() -> bool:
            if self._process.poll() is not None:
                raise RuntimeError(f"tinyproxy exited: {self._process.stderr.read()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_until(listening, "tinyproxy to listen", START_TIMEOUT_S)

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)
