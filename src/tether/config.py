"""The workspace's configuration: one frozen Settings, built once from flags and TETHER_* variables.

This module is the only reader of os.environ.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether import errors, limits

ENV_PREFIX = "TETHER_"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SANDBOX_MODES = ("on", "off")


def _paths(raw: str | list[str]) -> tuple[Path, ...]:
    items = raw.split(os.pathsep) if isinstance(raw, str) else raw
    return tuple(Path(item) for item in items if item)


def _names(raw: str | list[str]) -> tuple[str, ...]:
    items = raw.split(os.pathsep) if isinstance(raw, str) else raw
    return tuple(item for item in items if item)


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("tether-data")
    host: str = "127.0.0.1"
    port: int = 8080
    name: str = "tether"
    database_url: str | None = None
    admin_password: str | None = dataclasses.field(default=None, repr=False)
    secret_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_running: int = 16
    cancel_grace_s: float = 3.0
    long_poll_s: float = 25.0
    max_clock_skew_s: float = 300.0
    max_body_bytes: int = 4 * 1024 * 1024
    public_url: str | None = None
    # the sandbox around every execution (see runner/sandbox.py and docs/security.md)
    sandbox: str = "on"
    sandbox_writable: tuple[Path, ...] = ()
    sandbox_env: tuple[str, ...] = ()
    run_as: str = "nobody"
    execution_memory_mb: int = 4096
    execution_processes: int = 4096
    execution_open_files: int = 1024
    execution_log_mb: int = limits.DEFAULT_EXECUTION_LOG_MB  # one execution's whole log
    # sessions (API tokens and UI cookies alike): lifetime from login, and idle timeout
    session_ttl_s: float = 12 * 3600.0
    session_idle_s: float = 3600.0
    # scale-out (docs/scale-out.md): serve without a runner; this process's name in the
    # registry (default: the host's name); the lease every process renews
    no_runner: bool = False
    process_name: str | None = None
    lease_s: float = 30.0

    @property
    def is_shared_store(self) -> bool:
        """Whether the store can take several processes at once (PostgreSQL)."""
        return self.resolved_database_url.startswith(("postgresql", "postgres:"))

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "tether.sqlite3"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def resolved_secret_file(self) -> Path:
        return self.secret_file or self.data_dir / "secret.key"

    @property
    def is_sandbox_on(self) -> bool:
        return self.sandbox == "on"

    @property
    def given_paths(self) -> list[Path]:
        """Every path the server was given: a child of the sandbox may touch none of them."""
        paths = [self.data_dir, self.resolved_secret_file, self.tls_cert, self.tls_key]
        return [path for path in [*paths, self.sqlite_file] if path is not None]

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite store's file; None on PostgreSQL."""
        url = self.resolved_database_url
        if not url.startswith("sqlite") or ":///" not in url:
            return None
        return Path(url.split(":///", 1)[1])

    def sandbox_environment(self) -> dict[str, str]:
        """What a child's environment holds beside HOME and TMPDIR: PATH, LANG, TZ and the
        variables an admin listed (NAME passes the server's value on, NAME=VALUE sets one)."""
        chosen = {"PATH": os.environ.get("PATH") or DEFAULT_PATH, "LANG": "C.UTF-8"}
        chosen.update({k: os.environ[k] for k in ("LANG", "TZ") if os.environ.get(k)})
        for item in self.sandbox_env:
            name, is_set, value = item.partition("=")
            if is_set:
                chosen[name] = value
            elif name in os.environ:
                chosen[name] = os.environ[name]
        return chosen


_CONVERTERS: dict[str, Any] = {
    "data_dir": Path,
    "secret_file": Path,
    "tls_cert": Path,
    "tls_key": Path,
    "port": int,
    "max_running": int,
    "cancel_grace_s": float,
    "long_poll_s": float,
    "max_clock_skew_s": float,
    "max_body_bytes": int,
    "sandbox_writable": _paths,
    "sandbox_env": _names,
    "execution_memory_mb": int,
    "execution_processes": int,
    "execution_open_files": int,
    "execution_log_mb": int,
    "session_ttl_s": float,
    "session_idle_s": float,
    "no_runner": lambda raw: raw.strip().lower() in ("1", "true", "yes", "on"),
    "lease_s": float,
}
_SEQUENCES = ("sandbox_writable", "sandbox_env")


def env_name(field: str) -> str:
    """The TETHER_* variable that sets ``field``."""
    return ENV_PREFIX + field.upper()


def read_env(name: str) -> str | None:
    """One TETHER_* variable, for the CLI's client commands."""
    return os.environ.get(env_name(name))


def proxies_from_environment() -> dict[str, str]:
    """HTTPS_PROXY, HTTP_PROXY and NO_PROXY (either case) as urllib reads them: scheme to
    proxy, and "no" to the hosts reached directly. A sync config's proxy_url wins over them."""
    return urllib.request.getproxies_environment()


def load(**flags: Any) -> Settings:
    """Settings from flags (None means unset), then TETHER_* variables, then defaults."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        raw = flags.get(field.name)
        if raw is None:
            raw = os.environ.get(env_name(field.name))
        if raw is None or raw == "":
            continue
        convert = _CONVERTERS.get(field.name)
        is_convertible = isinstance(raw, str) or field.name in _SEQUENCES
        values[field.name] = convert(raw) if convert and is_convertible else raw
    settings = Settings(**values)
    _check_sandbox(settings)
    _check_lease(settings)
    return settings


def _check_lease(settings: Settings) -> None:
    if settings.lease_s < 1:
        raise errors.SettingsInvalid(
            detail=f"--lease-s {settings.lease_s:g}: a lease shorter than a second would run "
            "out under ordinary load; give 1 or more (default 30)"
        )


def require_shared_store(settings: Settings, what: str) -> None:
    """Refuse ``what`` (a command or flag that needs other processes) on a SQLite store."""
    if settings.is_shared_store:
        return
    raise errors.SettingsInvalid(
        detail=f"{what} needs the workspace's PostgreSQL store (--database-url "
        "postgresql://...): a SQLite store belongs to the one `tether serve` process in its "
        "data directory, which runs that workspace's executions itself, and no other process "
        "may share it"
    )


def _check_sandbox(settings: Settings) -> None:
    if settings.sandbox not in SANDBOX_MODES:
        raise errors.SettingsInvalid(detail=f"--sandbox {settings.sandbox!r}: say 'on' or 'off'")
    for item in settings.sandbox_env:
        name = item.partition("=")[0]
        if not name or name.startswith(ENV_PREFIX):
            raise errors.SettingsInvalid(
                detail=f"--sandbox-env {item!r}: the server's own {ENV_PREFIX}* variables never reach "
                "a flow; list other variables (NAME or NAME=VALUE)"
            )
    fields = ("execution_memory_mb", "execution_processes", "execution_open_files")
    for field in (*fields, "execution_log_mb"):
        if getattr(settings, field) < 1:
            raise errors.SettingsInvalid(
                detail=f"--{field.replace('_', '-')} must be a positive number"
            )


def workspace_secret(settings: Settings) -> bytes:
    """The workspace secret: read from its file, or generated there (mode 0600) on first start."""
    path = settings.resolved_secret_file
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret + b"\n")
    return secret


def make_data_dir_private(settings: Settings) -> None:
    """Create the data directory, and make it and all it holds private to this account.

    Private whatever the umask: directories 0700, files 0600. What the server creates
    later (the SQLite store, its -wal and -shm files, the secret) it creates 0600 itself.
    """
    root = settings.data_dir
    root.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _make_private(root, PRIVATE_DIR_MODE)
    for folder, folders, files in os.walk(root):
        for name in folders:
            _make_private(Path(folder, name), PRIVATE_DIR_MODE)
        for name in files:
            _make_private(Path(folder, name), PRIVATE_FILE_MODE)


def _make_private(path: Path, mode: int) -> None:
    """Set ``mode`` on ``path`` if this account owns it; never through a symbolic link."""
    try:
        info = path.lstat()
        if path.is_symlink() or info.st_uid != os.geteuid() or info.st_mode & 0o777 == mode:
            return
        path.chmod(mode)
    except OSError as exc:
        log.warning("cannot make %s private (mode %o): %s", path, mode, exc.strerror)
