"""The event loop every rexec program runs on: the standard library's, or
uvloop when ``REXEC_EVENT_LOOP=uvloop`` asks for it and it is installed.

uvloop is opt-in, not the default, because ``bench/run.py`` did not show it
paying here: about 10% off the warm round trip, but bulk output no faster and
in most runs slower (see the README's Speed section). Every rexec program
runs on either loop (the test suite passes on both); nothing depends on which.

Also the heap a bulk-streaming process runs on: glibc's allocator tuned to
reuse megabyte buffers (:func:`pin_allocator`) and to hand them back once a
burst is over (:func:`bulk_moved`, :func:`bulk_over`).
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
_M_ARENA_MAX = -8
#: Blocks up to this size come from the heap, not a fresh ``mmap`` each: above
#: the largest frame body (1 MiB) with its header, and a transport's buffer.
_MMAP_THRESHOLD = 4 * 1024 * 1024
#: Free memory at the heap's top kept for reuse rather than handed back.
_TRIM_THRESHOLD = 16 * 1024 * 1024
#: Bulk bytes (frame bodies, sent or received) after which the end of a
#: request hands the heap's free pages back (:func:`bulk_moved`). Large enough
#: that the pages a later transfer faults in again cost little: a
#: transfer's working set is about 8 MiB, faulted in again at about 0.5
#: CPU-s per GiB (4 ms) once per at least 64 MiB moved at over 1.5 CPU-s per
#: GiB (about 2% at worst, 0.3% for 512 MiB).
RETURN_AFTER = 64 * 1024 * 1024
_libc: Any = None
_allocator_pinned = False
_bulk_since_return = 0


def pin_allocator() -> None:
    """Keep megabyte buffers in the heap, for a process about to stream bulk data.

    Every bulk frame allocates about 1 MiB (the read, the frame, the decoded
    body). glibc serves such a block with a fresh ``mmap`` and hands it back on
    ``free`` (its dynamic threshold rises, but the heap's top is trimmed again
    at twice that), so each frame's pages fault in anew: measured at 0.5 CPU-s
    per GiB for one 1 MiB copy, against 0.05 with the thresholds pinned
    (bench/SPEED3_RESULTS.md). Pinned, freed blocks are reused, and at most
    ``_TRIM_THRESHOLD`` of free heap is kept after a burst, until
    :func:`bulk_over` hands it all back.

    One arena for every thread (``M_ARENA_MAX``): glibc would give each
    executor thread (a get's read-ahead, a put's writer) an arena of its own,
    each keeping its freed megabytes apart and out of reach of
    ``malloc_trim``'s top-of-heap release; rexecd's peak then grew with every
    transfer a daemon served (bench/SPEED5_MEMORY.md). Python allocates under
    the GIL anyway, so one arena costs no contention.

    Process-wide and idempotent; a no-op where the C library is not glibc.
    Called by rexecd at start and by the client when bulk data begins (the
    ctypes import, ~2 ms, stays out of a short command's start-up).
    """
    global _allocator_pinned, _libc
    if _allocator_pinned:
        return
    _allocator_pinned = True
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return
    except (ValueError, OSError):
        return  # not glibc (musl, macOS): its allocator has no such thresholds
    import ctypes

    _libc = ctypes.CDLL(None)
    _libc.mallopt(_M_ARENA_MAX, 1)
    _libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    _libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


def bulk_moved(nbytes: int) -> None:
    """Count ``nbytes`` of bulk data (frame bodies) through the heap."""
    global _bulk_since_return
    _bulk_since_return += nbytes


def bulk_over() -> None:
    """A request has ended: when ``RETURN_AFTER`` bulk bytes have moved since
    the last time, hand every free page of the heap back to the kernel
    (``malloc_trim(0)``: the free top and the free blocks inside, which the
    trim threshold alone never returns).

    Without it a long-lived process keeps what its largest burst left free,
    and more: blocks freed below live objects can't be trimmed, and the next
    transfer's buffers land beside them, so the peak grew with each transfer
    (bench/SPEED5_MEMORY.md). A no-op before :func:`pin_allocator`, or where
    the C library is not glibc. Costs 20 µs on a quiet heap, 0.3 ms after a
    burst, plus the faults of pages used again."""
    global _bulk_since_return
    if _bulk_since_return < RETURN_AFTER or _libc is None:
        return
    _bulk_since_return = 0
    _libc.malloc_trim(0)
