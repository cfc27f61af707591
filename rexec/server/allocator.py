"""The C allocator's settings for a long-running daemon that moves bulk data.

rexecd allocates a fresh ``bytes`` of up to 1 MiB for every output read and
every frame it encodes. glibc serves allocations above its mmap threshold
(128 KiB at start, adjusted as chunks are freed) with a fresh ``mmap``, and
returns free memory at the heap's top to the kernel once it passes the trim
threshold: either way the next 1 MiB buffer is memory the kernel must map and
zero again, one minor page fault per 4 KiB page. Measured with
``bench/bulk_faults.py``: ~480,000 faults and 1.4 CPU-seconds of rexecd per GiB
of output with the defaults, ~0 faults and 0.42 CPU-seconds with the
thresholds pinned (bench/RESULTS.md).

Pinning them keeps freed buffers in the heap for the next frame. Memory stays
bounded all the same: what is live at once is bounded by the write buffer's
limits (``rexec.server.writer``), and a freed buffer is reused, not added to.
"""

from __future__ import annotations

import ctypes
import os

#: ``mallopt`` parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Above the largest frame (1 MiB body limit) and the transport's largest
#: buffer, so that no per-frame allocation is a fresh mapping.
MMAP_THRESHOLD = 16 * 1024 * 1024
#: Free memory at the heap's top kept for reuse rather than handed back.
TRIM_THRESHOLD = 32 * 1024 * 1024


def pin_malloc_thresholds() -> bool:
    """Set glibc's mmap and trim thresholds for bulk buffers (see the module
    docstring). Returns False, changing nothing, where the C library is not
    glibc or an operator set ``MALLOC_*`` in the environment (theirs wins:
    glibc read it at start-up)."""
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    libc = ctypes.CDLL(None)  # the C library the interpreter is linked with
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return False  # not glibc: musl has no such thresholds
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
