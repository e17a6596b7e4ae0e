"""glibc's malloc tuned for the engine's large, short-lived activation buffers."""
from __future__ import annotations

import ctypes
import os
import sys

_allocator_tuned = False


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed blocks for reuse instead of returning them to the OS.

    Every evaluation allocates and frees the same large activation buffers; by default glibc
    serves each from fresh mmap'ed pages, and the page faults of first touch cost a good share of
    an evaluation (docs/performance.md). With these settings the freed blocks are reused. One
    heap for all threads, not one per thread: blocks freed by one worker thread are then reused
    by the others; with a heap per thread the peak memory of a run varied with the threads'
    timing (docs/performance.md). Memory is not handed back to the OS between evaluations.
    Linux/glibc only; set GATYS_MALLOC_DEFAULTS=1 to leave malloc alone.
    """
    global _allocator_tuned
    if (_allocator_tuned or os.environ.get("GATYS_MALLOC_DEFAULTS")
            or not sys.platform.startswith("linux")):
        return
    _allocator_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1)
        libc.mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass  # not glibc: keep the defaults
