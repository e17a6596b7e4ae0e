"""glibc's malloc tuned for the engine's large, short-lived activation buffers."""
from __future__ import annotations

import ctypes
import os
import sys

from .cpuinfo import cpu_vendor

_allocator_tuned = False


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed blocks for reuse instead of returning them to the OS.

    Every evaluation allocates and frees the same large activation buffers; by default glibc
    serves each from fresh mmap'ed pages, and the page faults of first touch cost a good share of
    an evaluation (docs/performance.md). With these settings the freed blocks are reused.
    Memory is not handed back to the OS between evaluations. ``GATYS_MALLOC_ARENAS``: the
    heaps the threads share (:func:`arena_setting`). With one, blocks freed by one worker
    thread are reused by the others and the peak stays low; with a heap per thread (0), each
    thread reuses its own, still in its own cache, where on AMD's CPUs of several L3s (and VMs
    whose cores the host places on them) a block last written by a core of another L3 is fetched
    from there, line by line. Linux/glibc only; set GATYS_MALLOC_DEFAULTS=1 to leave malloc
    alone.
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
    """GATYS_MALLOC_ARENAS as a number of heaps (0: glibc's heap per thread); if unset or not a
    whole number of 0 or more, a heap per thread on AMD's CPUs and one elsewhere: on two AMD
    EPYC VMs one heap made two threads up to 1.8 times slower from time to time, and was no
    faster otherwise; on a 16-core Intel host it was (docs/performance.md)."""
    default = 0 if cpu_vendor() == "AuthenticAMD" else 1
    try:
        arenas = int(os.environ.get("GATYS_MALLOC_ARENAS", default))
    except ValueError:
        return default
    return arenas if arenas >= 0 else default
