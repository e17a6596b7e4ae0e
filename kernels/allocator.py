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
    an evaluation (docs/performance.md). With these settings the freed blocks are reused.
    Memory is not handed back to the OS between evaluations. ``GATYS_MALLOC_ARENAS`` (default
    1): the heaps the threads share. With one, blocks freed by one worker thread are reused by
    the others and the peak stays low; with 0 (glibc's heap per thread), a 512^2 evaluation ran
    3-8 % faster on 2 cores but the peak of a transfer rose by up to 0.13 GiB, and how it goes
    on 16 cores is measured by ``bench.gpu_check``'s cpu_scaling step (docs/performance.md).
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
        arenas = arena_setting()
        if arenas:
            libc.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass  # not glibc: keep the defaults


def arena_setting() -> int:
    """GATYS_MALLOC_ARENAS as a number of heaps (0: glibc's own choice); 1 if unset or not a
    whole number of 0 or more."""
    try:
        arenas = int(os.environ.get("GATYS_MALLOC_ARENAS", "1"))
    except ValueError:
        return 1
    return arenas if arenas >= 0 else 1
