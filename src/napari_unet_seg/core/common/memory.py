"""Give memory freed by large arrays back to the system between the blocks of a long run.

glibc's allocator keeps freed memory for reuse: large arrays freed by one
block (tens of MB each) leave holes that two threads' next allocations cannot
always reuse, so a long blockwise run's resident memory creeps up block after
block. ``malloc_trim`` returns the free pages; elsewhere (macOS, Windows,
musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library: no ldconfig subprocess to find it
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def return_freed_memory() -> bool:
    """Hand free heap pages back to the system; True when the platform's allocator could do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
