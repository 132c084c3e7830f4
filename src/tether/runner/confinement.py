"""The sandbox as the fork server applies it: prepared once, entered by each child before its script.

Standard library only, like everything that runs in the fork server and its children. The
server decides the policy (runner/sandbox.py); this module turns it into Landlock rules,
resource limits, an account without privileges, a clean environment and a scratch directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_module
import os
import pwd
import resource
import shutil
import sys
import tempfile
from typing import Any

from tether.runner import landlock

# Read and execute: the system and the Python installation (added from sys at start).
SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/proc",  # another process's files there are guarded by Landlock's ptrace rule
    "/sys",
    "/run/systemd/resolve",  # where /etc/resolv.conf often points
)
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
DEVICE_ACCESS = landlock.FS_READ_FILE | landlock.FS_WRITE_FILE | landlock.FS_IOCTL_DEV

_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39
_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
# NOROOT, NO_SETUID_FIXUP, KEEP_CAPS (off), NO_CAP_AMBIENT_RAISE, each with its lock: uid 0
# gains no capability back, not even by executing a program.
_SECUREBITS = 0b1110_1111
_CAPABILITY_VERSION_3 = 0x20080522
_channel_fd = 3  # where a child's channel lives once everything else is closed
SCRATCH_PREFIX = "tether-scratch-"  # then the fork server's pid: tether-scratch-PID-XXXXXXXX

_libc = ctypes.CDLL(None, use_errno=True)
# Looked up here, in the fork server: looked up in each child (on first use), libc's symbol
# cost about 0.2 ms and 70 page faults there, on the way to every execution.
_libc_prctl = _libc.prctl
_libc_capset = getattr(_libc, "capset", None)


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def is_within(path: str, ancestor: str) -> bool:
    """Whether ``path`` is ``ancestor`` or lies beneath it (both real, absolute paths)."""
    ancestor = ancestor.rstrip("/")  # "/" becomes "", beneath which every path lies
    return path.rstrip("/") == ancestor or path.startswith(ancestor + "/")


def python_paths() -> list[str]:
    """The directories of this Python installation and of every module it can import."""
    found = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    found.append(os.path.dirname(os.path.realpath(sys.executable)))
    found += [entry for entry in sys.path if entry and os.path.isdir(entry)]
    return found


def read_rules(roots: list[str], protected: list[str]) -> list[tuple[str, int]]:
    """Read-and-execute rules for ``roots``, minus every protected path beneath them.

    Landlock only allows; it cannot cut a hole. A root holding a protected path is replaced by
    its entries, recursively, so that only the protected path itself is left out.
    """
    rules: list[tuple[str, int]] = []
    seen: set[str] = set()
    for root in sorted({os.path.realpath(root) for root in roots if os.path.exists(root)}):
        if not any(is_within(root, other) for other in seen):
            seen.add(root)
            _add_beneath(root, protected, rules)
    return rules


def _add_beneath(path: str, protected: list[str], rules: list[tuple[str, int]]) -> None:
    if any(is_within(path, hole) for hole in protected):
        return
    if not any(is_within(hole, path) for hole in protected):
        rules.append((path, landlock.FS_READ))
        return
    with os.scandir(path) as entries:
        for entry in entries:
            real = os.path.realpath(entry.path)
            if is_within(real, path):  # a symbolic link out of here is followed where it lands
                _add_beneath(real, protected, rules)


class Confinement:
    """What every child of this fork server enters: prepared once, entered after each fork.

    Made only in the fork server: making it sets this process's environment to the policy's
    and, as root, empties its capability bounding set, which every child then inherits.
    """

    def __init__(self, policy: dict[str, Any]) -> None:
        protected = [os.path.realpath(p) for p in policy["protected"]]
        roots = list(SYSTEM_PATHS) + python_paths()
        read = [_opened(path, access) for path, access in read_rules(roots, protected)] + [
            _opened(device, DEVICE_ACCESS) for device in DEVICES if os.path.exists(device)
        ]
        writable = [_opened(path, landlock.FS_ALL) for path in policy["writable"]]
        # Built here, so that a child only makes the system calls: building them in each
        # child cost about 0.1 ms.
        self._rules = landlock.PathRules(read + writable)
        self._env: dict[str, str] = policy["env"]
        self._limits: dict[str, int] = policy["limits"]
        self._uid, self._gid, self.identity = _identity(policy["run_as"])
        remove_stale_scratch_roots()
        self.scratch_root = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        os.chmod(self.scratch_root, 0o711)  # children reach their own directory, list none
        self._max_fd = os.sysconf("SC_OPEN_MAX")
        # Once, here, rather than in each child (with the prctl lookup above, that took
        # 0.3 ms of the 1.4 a child spent entering). The fork server executes no program,
        # so an empty bounding set takes nothing from it.
        _set_environment(self._env)
        if os.geteuid() == 0:
            _drop_bounding_set(_last_capability())

    def scratch_of(self, pid: int) -> str:
        return os.path.join(self.scratch_root, str(pid))

    def enter(self, channel_fd: int) -> int:
        """Confine this freshly forked child; the number its channel now has."""
        scratch = self.scratch_of(os.getpid())
        os.mkdir(scratch, 0o700)
        if self._uid is not None:
            os.chown(scratch, self._uid, self._gid)
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        self._restrict_files(scratch)
        self._limit_resources()
        self._drop_privileges()
        channel_fd = _close_inherited(channel_fd, self._max_fd)
        _enter_scratch(scratch)
        return channel_fd

    def rehearse(self) -> None:
        """Walk the path ``enter`` takes, harmlessly, so that its first-time work (ctypes
        calls, the interpreter specializing them) is done once here, not in each child
        (runner/warmup.py): a ruleset built and dropped, the settings read, not changed."""
        ruleset = landlock.Ruleset(fs=landlock.FS_ALL, scoped=landlock.SCOPE_ALL)
        try:
            ruleset.allow_all(self._rules)
        finally:
            ruleset.close()
        _prctl(_PR_GET_NO_NEW_PRIVS, 0)
        for kind in (resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE):
            resource.getrlimit(kind)

    def remove_scratch(self, pid: int) -> None:
        scratch = self.scratch_of(pid)
        try:
            os.rmdir(scratch)  # mostly left empty: half the 0.1 ms rmtree takes
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.scratch_root, ignore_errors=True)

    def _restrict_files(self, scratch: str) -> None:
        ruleset = landlock.Ruleset(fs=landlock.FS_ALL, scoped=landlock.SCOPE_ALL)
        ruleset.allow_all(self._rules)
        scratch_fd = os.open(scratch, os.O_PATH)
        ruleset.allow_beneath(scratch_fd, landlock.FS_ALL)
        os.close(scratch_fd)
        ruleset.restrict_self()

    def _limit_resources(self) -> None:
        limits = {
            resource.RLIMIT_AS: self._limits["memory_mb"] * 1024 * 1024,
            resource.RLIMIT_NPROC: self._limits["processes"],
            resource.RLIMIT_NOFILE: self._limits["open_files"],
            resource.RLIMIT_CORE: 0,
        }
        for kind, value in limits.items():
            resource.setrlimit(kind, (value, value))

    def _drop_privileges(self) -> None:
        if os.geteuid() != 0:
            return  # the server's own account: nothing to give up
        # The bounding set is already empty: the fork server dropped it (see __init__).
        if self._uid is not None:
            os.setgroups([])
            os.setresgid(self._gid, self._gid, self._gid)
            os.setresuid(self._uid, self._uid, self._uid)  # clears every capability
        else:
            _drop_capabilities()


def remove_stale_scratch_roots(directory: str | None = None) -> None:
    """Remove the scratch roots of fork servers that are gone without removing theirs
    (killed outright): each is named after its fork server's pid, and a root whose pid no
    longer runs is stale. A root of a running fork server is never touched (a reused pid
    keeps a stale root, which costs an empty directory)."""
    directory = directory or tempfile.gettempdir()
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            owner = entry.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
            is_root = entry.name.startswith(SCRATCH_PREFIX) and owner.isdigit()
            if is_root and not _is_running(int(owner)):
                shutil.rmtree(entry.path, ignore_errors=True)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another account's process
    return True


def _opened(path: str, access: int) -> tuple[int, int]:
    """An O_PATH descriptor of ``path`` and the access to grant there (files take fewer)."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    if not os.path.isdir(path):
        access &= landlock.FS_FILE_ONLY
    return fd, access


def _identity(run_as: str) -> tuple[int | None, int, str]:
    """The uid and gid children switch to (None: they keep the server's) and words for it."""
    if os.geteuid() != 0:
        return None, os.getegid(), f"the server's own account (uid {os.geteuid()})"
    account = pwd.getpwnam(run_as)
    if _can_run_python_as(account.pw_uid, account.pw_gid):
        return account.pw_uid, account.pw_gid, f"{run_as} (uid {account.pw_uid})"
    return (
        None,
        0,
        f"uid 0 without capabilities ({run_as} cannot read the Python installation)",
    )


def _can_run_python_as(uid: int, gid: int) -> bool:
    """Whether the account can read the interpreter, the standard library and tether."""
    needed = [os.path.realpath(sys.executable), os.__file__, __file__]
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            is_readable = all(os.access(path, os.R_OK) for path in needed)
            os._exit(0 if is_readable and os.access(needed[0], os.X_OK) else 1)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _last_capability() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        return int(handle.read())


def _prctl(option: int, value: int) -> None:
    if _libc_prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}): {os.strerror(errno)}")


def _drop_bounding_set(last_cap: int) -> None:
    """No program this process executes can gain a capability again."""
    for cap in range(last_cap + 1):
        _prctl(_PR_CAPBSET_DROP, cap)
    _libc_prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def _drop_capabilities() -> None:
    """Keep uid 0 but give up every capability, for good (also across exec)."""
    _prctl(_PR_SET_SECUREBITS, _SECUREBITS)
    if _libc_capset is None:
        raise OSError(errno_module.ENOSYS, "capset: this libc has none")
    if _libc_capset(ctypes.byref(_NO_CAPABILITIES[0]), _NO_CAPABILITIES[1]) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"capset: {os.strerror(errno)}")


def _close_inherited(channel_fd: int, max_fd: int) -> int:
    """Close every descriptor but 0, 1, 2 and the channel, which moves to fd 3."""
    if channel_fd != _channel_fd:
        # Not inheritable: a program the script executes must not speak for the execution.
        os.dup2(channel_fd, _channel_fd, inheritable=False)
        os.close(channel_fd)
    os.closerange(_channel_fd + 1, max_fd)
    return _channel_fd


def _set_environment(env: dict[str, str]) -> None:
    """The fork server's environment becomes exactly ``env`` (it was started with it)."""
    os.environ.clear()
    os.environ.update(env)


def _enter_scratch(scratch: str) -> None:
    # Item by item: os.environ.update's generic path cost a child 0.2 ms more, in page faults.
    os.environ["HOME"] = scratch
    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = None  # the fork server's choice was cached
    os.chdir(scratch)


if _libc_capset is not None:
    _libc_capset.argtypes = (ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData))
# capset's arguments for "none at all", built once in the fork server
_NO_CAPABILITIES = (_CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)())
