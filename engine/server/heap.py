"""Giving the memory a large add freed back to the system.

Design notes
------------
Adding thousands of jobs in one request builds, for a moment, every job
several times over (the decoded body, the requests, the rows). Python frees
all of it when the request ends, but the C allocator keeps most freed
memory for later rather than handing it back, so without more the
engine's RSS would keep the peak of its largest add for good. After an add
of ``LARGE_ADD`` jobs or more, once its objects are gone, the server asks
glibc to return its free memory (``malloc_trim``); this costs well under a
millisecond. Where the C library is not glibc nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

__all__ = ["LARGE_ADD", "release_freed_memory"]

#: Jobs in one add from which its freed memory is handed back.
LARGE_ADD = 1000


@cache
def _trimmer() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def release_freed_memory() -> bool:
    """Hand the C allocator's free memory back to the system; whether this
    C library can (glibc)."""
    trim = _trimmer()
    if trim is None:
        return False
    trim(0)
    return True
