"""The sandbox as the server decides it: the policy it hands the fork server, checked at start.

The fork server and each child carry it out (runner/confinement.py); this module only reads
the settings, refuses the ones that cannot work, and says what the children will run as.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from tether import errors
from tether.config import Settings
from tether.runner import landlock
from tether.runner.confinement import is_within

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def protected_paths(settings: Settings) -> list[str]:
    """Every path the server was given, which no child may read or write: real paths."""
    paths = [str(path) for path in settings.given_paths]
    if settings.sqlite_file is not None:
        paths += [f"{settings.sqlite_file}{suffix}" for suffix in SQLITE_SIDE_FILES]
    return sorted({os.path.realpath(path) for path in paths})


def policy(settings: Settings) -> dict[str, Any] | None:
    """What the fork server confines each child with; None when the sandbox is off."""
    if not settings.is_sandbox_on:
        return None
    protected = protected_paths(settings)
    return {
        "protected": protected,
        "writable": _writable(settings, protected),
        "run_as": _checked_account(settings.run_as),
        "env": settings.sandbox_environment(),
        "limits": {
            "memory_mb": settings.execution_memory_mb,
            "processes": settings.execution_processes,
            "open_files": settings.execution_open_files,
        },
    }


def check_kernel() -> None:
    """Refuse to start when this kernel cannot confine children."""
    abi = landlock.abi_version()
    if abi < landlock.MIN_ABI:
        offered = f"Landlock ABI {abi}" if abi else "no Landlock"
        raise errors.SandboxUnavailable(
            detail=f"this kernel offers {offered}, and the sandbox needs ABI "
            f"{landlock.MIN_ABI} or newer (Linux 6.12, with 'landlock' in the lsm= boot list)"
        )


def _writable(settings: Settings, protected: list[str]) -> list[str]:
    chosen = []
    for path in settings.sandbox_writable:
        real = os.path.realpath(path)
        if not Path(real).is_dir():
            raise errors.SettingsInvalid(
                detail=f"--sandbox-writable {path}: no such directory; create it or leave it out"
            )
        overlap = [hole for hole in protected if is_within(hole, real) or is_within(real, hole)]
        if overlap:
            raise errors.SettingsInvalid(
                detail=f"--sandbox-writable {path} overlaps {overlap[0]}, which flows must "
                "never reach: pick a directory apart from the data directory and the keys"
            )
        chosen.append(real)
    return chosen


def _checked_account(name: str) -> str:
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise errors.SettingsInvalid(
                detail=f"--run-as {name}: no such account on this host; create it or name another"
            ) from None
    return name
