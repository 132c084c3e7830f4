"""Real servers on loopback for the connector tests: HTTPS (stdlib, trustme certificates),
SMTP with STARTTLS and AUTH (aiosmtpd), and Debian's OpenSSH sshd on a free port.

aiosmtpd for SMTP: the standard library's smtpd is gone (3.12), and aiosmtpd is its
maintained successor from the same authors (aio-libs), with STARTTLS and AUTH built in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from tests.support.waiting import wait_until

# --- HTTPS ----------------------------------------------------------------------------------


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON; /status/NNN answers NNN."""

    server: _EchoServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        seen = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        self.server.seen.append(seen)
        status = 200
        if self.path.startswith("/status/"):
            status = int(self.path.split("/")[2].split("?")[0])
        payload = json.dumps({**seen, "answer": f"answered {status}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Echo", "yes")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _EchoServer(ThreadingHTTPServer):
    seen: list[dict[str, Any]]


@contextlib.contextmanager
def https_server(ca: trustme.CA) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTPS echo server on a free loopback port: (base URL, the requests it saw)."""
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    server.seen = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", server.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- SMTP -----------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the SMTP server received, and the login it accepts."""

    user: str = "mailer"
    password: str = "mail-secret"
    messages: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 2.0.0 queued"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        is_ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        if is_ok:
            self.logins.append(self.user)
        # handled=False: aiosmtpd then answers a failure with its own 535 (else it says nothing)
        return AuthResult(success=is_ok, handled=False)


class _LoopbackController(Controller):
    """aiosmtpd's controller on a port the system picks (port 0)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        # asyncio's create_server made it: a Server, which (unlike AbstractServer) has sockets
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it untyped


@contextlib.contextmanager
def smtp_server(ca: trustme.CA) -> Iterator[tuple[int, Mailbox]]:
    """An SMTP server on a free loopback port that requires STARTTLS before AUTH."""
    mailbox = Mailbox()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    controller = _LoopbackController(
        mailbox,
        hostname="127.0.0.1",
        port=0,
        tls_context=context,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


# --- SSH ------------------------------------------------------------------------------------

SSHD = Path("/usr/sbin/sshd")


def ensure_sshd() -> Path:
    """Debian's sshd; the test is skipped, saying how to get it, when it is missing.

    `./dev test` installs it (as root) before any test runs: installed from the tests, two
    workers at once collided on dpkg's lock and one skipped.
    """
    if not SSHD.exists():
        pytest.skip(
            f"SSH tests need Debian's OpenSSH server at {SSHD}: run the tests with "
            "`./dev test` as root, or `apt-get install -y openssh-server`"
        )
    return SSHD


@dataclass
class Sshd:
    port: int
    user: str
    client_key: str  # the OpenSSH private key that may log in
    host_key_line: str  # "ssh-ed25519 AAAA..."
    host_fingerprint: str  # "SHA256:..."
    password: str | None  # a password that logs in as ``password_user``, when one was set up
    password_user: str | None


def _free_port() -> int:
    # sshd cannot report a port it chose itself; the port is taken at once by sshd below and
    # the start is retried on the rare clash.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _fingerprint(public_file: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_file)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


@contextlib.contextmanager
def sshd_server(directory: Path, password_user: tuple[str, str] | None) -> Iterator[Sshd]:
    """sshd on a free loopback port, logging in the current user with a fresh key (and
    ``password_user`` (name, password) with its password, when given)."""
    sshd = ensure_sshd()
    user = (
        os.environ.get("USER")
        or subprocess.run(["id", "-un"], check=True, capture_output=True, text=True).stdout.strip()
    )
    host_key, client_key = directory / "host_key", directory / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    authorized = directory / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    for _attempt in range(5):
        port = _free_port()
        config = directory / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM yes\n"
            "PermitRootLogin yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            f"PidFile {directory / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
        )
        process = subprocess.Popen(
            [str(sshd), "-D", "-e", "-f", str(config)],
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        if _wait_listening(process, port):
            break
    else:
        raise AssertionError("sshd did not start on any of 5 ports")
    try:
        yield Sshd(
            port=port,
            user=user,
            client_key=client_key.read_text(),
            host_key_line=" ".join(host_key.with_suffix(".pub").read_text().split()[:2]),
            host_fingerprint=_fingerprint(host_key.with_suffix(".pub")),
            password=password_user[1] if password_user else None,
            password_user=password_user[0] if password_user else None,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()


def _wait_listening(process: subprocess.Popen[str], port: int, timeout_s: float = 15.0) -> bool:
    """Whether sshd accepts connections on ``port`` (False: it exited, the port was taken)."""

    def listening_or_exited() -> str | None:
        if process.poll() is not None:
            return "exited"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return "listening"
        return None

    found = wait_until(listening_or_exited, f"sshd to listen on {port}", timeout_s, poll_s=0.05)
    return found == "listening"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
