"""Linux Landlock over ctypes: create a ruleset, add path and port rules, restrict this process.

Standard library only: it runs in the fork server and in each child before the script.
Kernel ABI reference: include/uapi/linux/landlock.h (ABI 6 adds scopes, 4 TCP ports).
"""

from __future__ import annotations

import ctypes
import os

# The syscall numbers are the same on every architecture (added after the tables merged).
_CREATE_RULESET = 444
_ADD_RULE = 445
_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5

NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4

SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

MIN_ABI = 6  # scopes: without them a child could signal the server

FS_ALL = (1 << 16) - 1
FS_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
# Rights a rule on a file (not a directory) may carry; the others are refused with EINVAL.
FS_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
SCOPE_ALL = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # packed in the kernel's header
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPortAttr(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock {what}: {os.strerror(errno)}")
    return result


def abi_version() -> int:
    """The Landlock ABI this kernel offers; 0 when it offers none (or it is disabled)."""
    result = _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    return max(int(result), 0)


class PathRules:
    """Path rules built once (in the fork server) and added to many rulesets (in each child)."""

    def __init__(self, rules: list[tuple[int, int]]) -> None:
        # (fd, access) pairs; the fds (O_PATH will do) must stay open while this is used
        self.attrs = [_PathBeneathAttr(access, fd) for fd, access in rules]


class Ruleset:
    """A ruleset under construction; ``restrict_self`` applies it to this process for good."""

    def __init__(self, *, fs: int = 0, net: int = 0, scoped: int = 0) -> None:
        attr = _RulesetAttr(fs, net, scoped)
        self._fd = _check(
            _syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0),
            "create_ruleset",
        )

    def allow_beneath(self, fd: int, access: int) -> None:
        """Allow ``access`` beneath the file or directory open as ``fd`` (O_PATH will do)."""
        attr = _PathBeneathAttr(access, fd)
        _check(_syscall(_ADD_RULE, self._fd, _RULE_PATH_BENEATH, ctypes.byref(attr), 0), "add_rule")

    def allow_all(self, rules: PathRules) -> None:
        """Allow every rule of ``rules``, as ``allow_beneath`` would one by one."""
        for attr in rules.attrs:
            _check(
                _syscall(_ADD_RULE, self._fd, _RULE_PATH_BENEATH, ctypes.byref(attr), 0),
                "add_rule",
            )

    def allow_port(self, port: int, access: int) -> None:
        """Allow ``access`` (NET_* bits) on TCP ``port``."""
        attr = _NetPortAttr(access, port)
        _check(_syscall(_ADD_RULE, self._fd, _RULE_NET_PORT, ctypes.byref(attr), 0), "add_rule")

    def restrict_self(self) -> None:
        """Confine this thread (and every process it starts) by the ruleset; then close it."""
        try:
            _check(_syscall(_RESTRICT_SELF, self._fd, 0), "restrict_self")
        finally:
            self.close()

    def close(self) -> None:
        """Close the ruleset's descriptor without applying it (again: nothing happens)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
