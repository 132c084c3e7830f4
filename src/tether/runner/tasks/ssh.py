"""The SSH task: run a script on a host with paramiko; the connection the SFTP task shares.

paramiko rather than asyncssh: a task runs in a blocking child process, and paramiko's
blocking API fits it without an event loop; it is the field's long-kept SSH library (Fabric,
Ansible's paramiko transport) and has SFTP built in.
"""

from __future__ import annotations

import base64
import hashlib
import io
import select
import time
from typing import Any

import paramiko

from tether.runner import flow_api
from tether.runner.tasks import TaskFailed, optional, required, unknown_inputs

CONNECTION_INPUTS = {
    "host",
    "hostname",
    "port",
    "user",
    "username",
    "password",
    "key",
    "private_key",
    "passphrase",
    "host_key",
    "known_hosts",
    "timeout",
}
KNOWN = CONNECTION_INPUTS | {"script", "check_exit_code"}
READ_BYTES = 64 * 1024
_KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def perform(inputs: dict[str, Any], this: flow_api.Execution) -> dict[str, Any]:
    """Run ``script``; outputs stdout, stderr and exit_code."""
    unknown_inputs(inputs, KNOWN)
    script = str(required(inputs, "script"))
    timeout = float(optional(inputs, "timeout", default=60))
    with connect(inputs) as client:
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_session(timeout=timeout)
        channel.exec_command(script)
        stdout, stderr, exit_code = _collect(channel, timeout)
    outputs = {"stdout": stdout, "stderr": stderr, "exit_code": exit_code}
    this.log(f"the script on {describe(inputs)} exited with code {exit_code}")
    if exit_code != 0 and optional(inputs, "check_exit_code", default=True):
        tail = (stderr or stdout).strip()[-500:]
        raise TaskFailed(
            f"the script on {describe(inputs)} exited with code {exit_code}: {tail}", outputs
        )
    return outputs


def describe(inputs: dict[str, Any]) -> str:
    """user@host:port of the connection, for messages."""
    user = optional(inputs, "username", "user", default="")
    port = int(optional(inputs, "port", default=22))
    return f"{user}@{required(inputs, 'host', 'hostname')}:{port}"


def connect(inputs: dict[str, Any]) -> paramiko.SSHClient:
    """A client connected and logged in, the host key checked against host_key or known_hosts."""
    host = str(required(inputs, "host", "hostname"))
    port = int(optional(inputs, "port", default=22))
    user = str(required(inputs, "username", "user"))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(_HostKeyCheck(inputs))
    key = optional(inputs, "key", "private_key")
    try:
        client.connect(
            host,
            port=port,
            username=user,
            password=optional(inputs, "password"),
            pkey=_private_key(str(key), optional(inputs, "passphrase")) if key else None,
            timeout=float(optional(inputs, "timeout", default=60)),
            allow_agent=False,
            look_for_keys=False,
        )
    except paramiko.AuthenticationException as exc:
        client.close()
        raise TaskFailed(f"{user}@{host}:{port} refused the login: {exc}") from exc
    except paramiko.SSHException as exc:
        client.close()
        raise TaskFailed(f"{host}:{port}: {exc}") from exc
    except OSError as exc:
        client.close()
        raise TaskFailed(f"could not connect to {host}:{port}: {exc}") from exc
    return client


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _HostKeyCheck(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # no stubs
    """Accept the host's key only when it is the pinned one or listed in known_hosts."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        self._pinned = str(inputs.get("host_key") or "").strip()
        self._known_hosts = str(inputs.get("known_hosts") or "")

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        offered = f"{key.get_name()} {key.get_base64()}"
        if self._pinned:
            pinned = self._pinned.split()
            if self._pinned == fingerprint(key) or pinned[-2:] == offered.split():
                return
            if pinned[:1] == [key.get_name()] or self._pinned.startswith("SHA256:"):
                raise TaskFailed(
                    f"the host key of {hostname} is {fingerprint(key)}, not the pinned "
                    f"{self._pinned[:80]}: the host was replaced, or someone is in between"
                )
        if self._known_hosts:
            known = paramiko.HostKeys()
            for line in self._known_hosts.splitlines():
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
                if entry is not None:
                    for name in entry.hostnames:
                        known.add(name, entry.key.get_name(), entry.key)
            if known.check(hostname, key):
                return
            if known.lookup(hostname):
                raise TaskFailed(
                    f"the host key of {hostname} ({fingerprint(key)}) is not the one in "
                    "known_hosts: the host was replaced, or someone is in between"
                )
        raise TaskFailed(
            f"the host key of {hostname} is {offered[:40]}... ({fingerprint(key)}) and nothing "
            f"vouches for it: pin it with host_key='{fingerprint(key)}' once you have checked "
            "it, or give known_hosts"
        )


def _private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    problems = []
    for key_type in _KEY_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException as exc:
            raise TaskFailed("the key is encrypted: give its passphrase") from exc
        except (paramiko.SSHException, ValueError) as exc:
            problems.append(f"{key_type.__name__}: {exc}")
    raise TaskFailed(
        "key is not a private key paramiko can read (OpenSSH or PEM, Ed25519, ECDSA or RSA): "
        + "; ".join(problems)
    )


def _collect(channel: paramiko.Channel, timeout: float) -> tuple[str, str, int]:
    """Read stdout and stderr together (reading one at a time can stall on the other)."""
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    while True:
        if channel.recv_ready():
            out += channel.recv(READ_BYTES)
        elif channel.recv_stderr_ready():
            err += channel.recv_stderr(READ_BYTES)
        elif channel.exit_status_ready():
            break
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                channel.close()
                raise TaskFailed(f"the script did not end within {timeout:g} s (timeout)")
            select.select([channel], [], [], min(remaining, 1.0))
    code = channel.recv_exit_status()
    # The server sends the exit status after the last output, and paramiko buffers packets in
    # order: output that arrived between the checks above is all here now. (Breaking without
    # reading it lost a script's last line now and then.)
    while channel.recv_ready():
        out += channel.recv(READ_BYTES)
    while channel.recv_stderr_ready():
        err += channel.recv_stderr(READ_BYTES)
    return out.decode(errors="replace"), err.decode(errors="replace"), code
