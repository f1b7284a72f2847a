"""Give freed memory back to the operating system between the stages of a long vertical job.

At a million rows a stage (loading a table, PSI, encrypting a tree's gradients, building its
histograms) allocates and frees hundreds of megabytes, much of it as small objects: pandas
leaves reference cycles that only a full collection frees, and glibc keeps freed heap pages
for reuse unless asked to trim them.  Without this a node's resident size stays at the peak
of its busiest stage for the rest of the job, and every party's peaks add up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable

__all__ = ["release_memory"]


def release_memory(*, collect: bool = True) -> None:
    """A full garbage collection (unless ``collect=False``), then ``malloc_trim(0)`` where the C library has it.

    The collection walks every object of the process (a good fraction of a second in a node
    on a busy machine); the trim alone is cheap, enough where nothing freed is in a cycle.
    """
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    return fn
