"""Password hashes: scrypt at OWASP's cost, checked with bounded concurrency.

Pure computation: never call these inside a store transaction, where a check would hold
the store's write lock for the whole hash (six bogus logins took a setting write from 4 ms
to 260 ms that way).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import threading

# OWASP's Password Storage Cheat Sheet lists N=2^14, r=8, p=5 as equal in strength to
# N=2^17, r=8, p=1: it costs the same CPU (0.25 s here) with 16 MiB of memory per hash
# instead of 128 MiB, so that checks in flight cannot exhaust the server's memory.
SCRYPT = {"n": 2**14, "r": 8, "p": 5}
_SCRYPT_MAXMEM_BYTES = 64 * 1024 * 1024
# Checks beyond this many wait their turn: each takes a core for a quarter second.
MAX_HASHING = max(2, os.cpu_count() or 2)
_hashing = threading.BoundedSemaphore(MAX_HASHING)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    with _hashing:
        return hashlib.scrypt(
            password.encode(), salt=salt, dklen=32, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM_BYTES
        )


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``, self-describing: ``scrypt$N$r$p$salt$digest``."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def is_password_correct(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash (of any cost)."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        computed = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with another cost than today's."""
    parts = stored.split("$")
    return parts[1:4] != [str(SCRYPT["n"]), str(SCRYPT["r"]), str(SCRYPT["p"])]


def check_against_nothing(password: str) -> None:
    """Spend a check's time on a refused login, so that timing does not tell which users exist."""
    is_password_correct(password, _dummy_hash())


@functools.cache
def _dummy_hash() -> str:
    """A hash to check refused logins against; made on first need (it costs a start 0.25 s)."""
    return hash_password(secrets.token_hex(8))
