"""glibc's allocator, set for a long-running server that handles megabyte strings.

glibc gives each thread that allocates an arena of its own, up to eight per core, and a
freed block's pages stay with its arena. The store's work runs on a pool of threads, so a
server that relays a big log (1 MB batches, updates and envelopes, built on whichever thread
ran the step) kept the freed pages of several arenas: the biglog bench's edge grew by 40-51
MB for a 30 MB log, and stayed there. ``tune()`` caps the arenas at two: the same run grows
it by 16-19 MB, and the controlling side by under 1 MB instead of 4-15, at the same rate
(bench/README.md, "biglog"). Fixing the threshold above which a block gets a mapping of its
own as well (256 KiB) cost the rate 10-20 % for no less memory, so it is left to glibc.

Standard library only; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt's parameter (glibc's malloc.h)
ARENA_MAX = 2


def tune() -> bool:
    """Cap this process's malloc arenas (call it before threads start); whether it was."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, macOS): nothing to set
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not mallopt(M_ARENA_MAX, ARENA_MAX):
        log.warning("glibc refused to cap the malloc arenas; memory may grow with big logs")
        return False
    return True
