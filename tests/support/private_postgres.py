"""A throwaway PostgreSQL server that asks for a password, for the sandbox's attack tests.

The machine's own server trusts every local connection, so on it "the server's credentials"
mean nothing: any process may connect as anyone. This one runs initdb in a temporary
directory with scram-sha-256 on 127.0.0.1 only (no Unix socket), as the `postgres` account.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER = "tether"


def unavailable_reason() -> str | None:
    """Why no private server can be started here, or None when one can."""
    if os.geteuid() != 0:
        return "starting a private PostgreSQL server needs root (to run it as 'postgres')"
    if not _bin_dir():
        return "PostgreSQL's server programs (initdb, pg_ctl) are not installed"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no 'postgres' account to run a private server as"
    return None


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(*command: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        check=True,
        capture_output=True,
        timeout=60,
    )


@contextlib.contextmanager
def password_postgres() -> Iterator[str]:
    """The URL (with its password) of a fresh server that refuses connections without it."""
    bin_dir = _bin_dir()
    assert bin_dir is not None
    account = pwd.getpwnam("postgres")
    root = Path(tempfile.mkdtemp(prefix="tether-private-pg-"))
    os.chown(root, account.pw_uid, account.pw_gid)
    password = secrets.token_urlsafe(16)
    password_file = root / "password"
    password_file.write_text(password)
    os.chown(password_file, account.pw_uid, account.pw_gid)
    data, port = root / "data", _free_port()
    try:
        _as_postgres(
            f"{bin_dir}/initdb", "-D", str(data), "-U", USER, "--auth=scram-sha-256",
            f"--pwfile={password_file}", "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off"
        )
        # Its output goes to a file: the server would hold a pipe open and hang the wait.
        log = str(root / "log")
        _as_postgres(f"{bin_dir}/pg_ctl", "-D", str(data), "-l", log, "-o", options, "-w", "start")
        yield f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _as_postgres(f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
