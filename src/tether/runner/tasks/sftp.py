"""The SFTP and SCP tasks: copy files between the workspace and a host over SFTP.

The SCP task speaks SFTP too, as OpenSSH's own scp does since 9.0: the copy is the same, and
paramiko has no SCP. A workspace file is written ``cloudomation:NAME`` (or ``workspace:NAME``).
"""

from __future__ import annotations

import io
from typing import Any

import paramiko

from tether.runner import flow_api
from tether.runner.tasks import TaskFailed, ssh, unknown_inputs

KNOWN = ssh.CONNECTION_INPUTS | {"src", "dst", "copies"}
_PREFIXES = ("cloudomation:", "workspace:")


def perform(inputs: dict[str, Any], this: flow_api.Execution) -> dict[str, Any]:
    """Copy ``src`` to ``dst`` (or each of ``copies``); outputs what was copied."""
    unknown_inputs(inputs, KNOWN)
    copies = list(inputs.get("copies") or [])
    if inputs.get("src") or inputs.get("dst"):
        copies.append({"src": inputs.get("src"), "dst": inputs.get("dst")})
    if not copies:
        raise TaskFailed("give src and dst, or copies=[{'src': ..., 'dst': ...}]")
    done = []
    with ssh.connect(inputs) as client:
        sftp = client.open_sftp()
        try:
            for copy in copies:
                done.append(_copy(sftp, this, str(copy.get("src")), str(copy.get("dst"))))
        finally:
            sftp.close()
    return {"copied": done}


def _workspace_name(path: str) -> str | None:
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return None


def _copy(
    sftp: paramiko.SFTPClient, this: flow_api.Execution, src: str, dst: str
) -> dict[str, Any]:
    system = flow_api.System(this._engine)
    from_file, to_file = _workspace_name(src), _workspace_name(dst)
    if (from_file is None) == (to_file is None):
        raise TaskFailed(
            f"copy {src!r} -> {dst!r}: exactly one side must be a workspace file, "
            "written 'cloudomation:NAME'"
        )
    try:
        if from_file is not None:
            content = system.file(from_file).get("content_bytes")
            sftp.putfo(io.BytesIO(content), dst)
        else:
            buffer = io.BytesIO()
            sftp.getfo(src, buffer)
            content = buffer.getvalue()
            system.file(str(to_file)).save(content=content)
    except flow_api.FlowApiError as exc:
        raise TaskFailed(f"copy {src!r} -> {dst!r}: {exc}") from exc
    except OSError as exc:  # paramiko reports the server's SFTP status as IOError
        raise TaskFailed(f"copy {src!r} -> {dst!r}: the host answered: {exc}") from exc
    this.log(f"copied {src} -> {dst} ({len(content)} bytes)")
    return {"src": src, "dst": dst, "size": len(content)}
