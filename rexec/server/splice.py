"""A frame whose body goes from a command's pipe to the client's socket
inside the kernel (``splice(2)``), never through the daemon's memory.

Reading 1 MiB of output into a ``bytes`` and sending it costs two copies of
every byte in the daemon (pipe → heap → socket); ``splice`` moves the pipe's
pages into the socket instead (bench/SPEED4_RESULTS.md). Only for a plain TCP
socket: under TLS the bytes must pass through the encryption, and the usual
read-and-send path is taken.

The frame must still go out whole and in order: the header first, then
exactly ``size`` bytes. Whatever the socket does not take at once (it is
non-blocking) is read from the pipe — where it still is, as nobody else reads
that pipe — and handed back for the transport to buffer, so a full socket
costs a copy, never a byte.
"""

from __future__ import annotations

import array
import fcntl
import os
import termios

#: Whether this kernel and Python can splice (Linux, Python 3.10+).
AVAILABLE = hasattr(os, "splice")
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


def pipe_bytes(fd: int) -> int:
    """Bytes waiting in the pipe ``fd`` (``FIONREAD``)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count, True)
    return count[0]


def splice_frame(sock_fd: int, header: bytes, pipe_fd: int, size: int) -> bytes:
    """Write ``header``, then ``size`` bytes moved from ``pipe_fd``, to the
    socket ``sock_fd``, as far as it takes them without blocking; return the
    rest of the frame (b"" when all went), which the caller must write next,
    before anything else.

    The caller guarantees that ``size`` bytes are in the pipe (``pipe_bytes``),
    that nothing else reads it, and that nothing of its own is waiting to be
    written to the socket. An error of the socket (the client is gone) stops
    the moving; the rest is returned, and the transport's own write will meet
    and report the same error.
    """
    try:
        sent = os.write(sock_fd, header)
    except OSError:  # BlockingIOError included: all of it waits for the transport
        sent = 0
    if sent < len(header):
        return header[sent:] + _read_exactly(pipe_fd, size)
    moved = 0
    while moved < size:  # bounded: each turn moves at least one byte, or stops
        try:
            step = os.splice(pipe_fd, sock_fd, size - moved, flags=_FLAGS)
        except OSError:  # BlockingIOError: the socket is full
            break
        if step <= 0:
            break
        moved += step
    return _read_exactly(pipe_fd, size - moved) if moved < size else b""


def _read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes that are known to be in the pipe ``fd``."""
    data = os.read(fd, size) if size else b""
    if len(data) != size:
        # Only possible if something else reads the pipe: the frame's header
        # promised bytes that are gone, and the stream can't be repaired.
        raise OSError(f"pipe held {len(data)} of the {size} bytes announced")
    return data
