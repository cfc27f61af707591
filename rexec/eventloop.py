"""The event loop every rexec program runs on: the standard library's, or
uvloop when ``REXEC_EVENT_LOOP=uvloop`` asks for it and it is installed.

uvloop is opt-in, not the default, because ``bench/run.py`` did not show it
paying here: about 10% off the warm round trip, but bulk output no faster and
in most runs slower (see the README's Speed section). Every rexec program
runs on either loop (the test suite passes on both); nothing depends on which.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when ``REXEC_EVENT_LOOP=uvloop`` and uvloop
    is installed; else None (the standard library's loop)."""
    if os.environ.get("REXEC_EVENT_LOOP", "").lower() != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coroutine)


#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap, not a fresh ``mmap`` each: above
#: the largest frame body (1 MiB) with its header, and a transport's buffer.
_MMAP_THRESHOLD = 4 * 1024 * 1024
#: Free memory at the heap's top kept for reuse rather than handed back.
_TRIM_THRESHOLD = 16 * 1024 * 1024
_allocator_pinned = False


def pin_allocator() -> None:
    """Keep megabyte buffers in the heap, for a process about to stream bulk data.

    Every bulk frame allocates about 1 MiB (the read, the frame, the decoded
    body). glibc serves such a block with a fresh ``mmap`` and hands it back on
    ``free`` (its dynamic threshold rises, but the heap's top is trimmed again
    at twice that), so each frame's pages fault in anew: measured at 0.5 CPU-s
    per GiB for one 1 MiB copy, against 0.05 with the thresholds pinned
    (bench/SPEED3_RESULTS.md). Pinned, freed blocks are reused; peak memory is
    unchanged (the same blocks, reused rather than remapped), and at most
    ``_TRIM_THRESHOLD`` of free heap is kept after a burst.

    Process-wide and idempotent; a no-op where the C library is not glibc.
    Called by rexecd at start and by the client when bulk data begins (the
    ctypes import, ~2 ms, stays out of a short command's start-up).
    """
    global _allocator_pinned
    if _allocator_pinned:
        return
    _allocator_pinned = True
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return
    except (ValueError, OSError):
        return  # not glibc (musl, macOS): its allocator has no such thresholds
    import ctypes

    libc = ctypes.CDLL(None)
    libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
