"""Reading the local standard input without blocking the event loop."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import stat
from collections.abc import AsyncIterator

CHUNK_SIZE = 64 * 1024


async def read_chunks(fd: int) -> AsyncIterator[bytes]:
    """Yield what can be read from ``fd`` until EOF.

    Pipes and sockets are read through the event loop. A terminal is read when
    the loop says it is readable, and left in blocking mode: its file
    description is usually shared with stdout and stderr, which must not turn
    non-blocking under our writes. Other files (regular files, ``/dev/null``)
    can't be polled, but reading them never waits long, so they are read
    directly.
    """
    if os.isatty(fd):
        async for chunk in _read_terminal(fd):
            yield chunk
        return
    pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
    with pipe:
        mode = os.fstat(pipe.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            while chunk := pipe.read(CHUNK_SIZE):
                yield chunk
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=CHUNK_SIZE)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            while chunk := await reader.read(CHUNK_SIZE):
                yield chunk
        finally:
            transport.close()
            # The transport made the file description non-blocking; another
            # process may share it and expect it blocking again.
            os.set_blocking(fd, True)


async def _read_terminal(fd: int) -> AsyncIterator[bytes]:
    """Chunks from a terminal until its end of input (see ``read_terminal_now``)."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            chunk = read_terminal_now(fd)
            if chunk is None:
                continue
            if not chunk:
                return
            yield chunk
    finally:
        loop.remove_reader(fd)


def read_terminal_now(fd: int) -> bytes | None:
    """Read what the terminal ``fd`` holds, once the loop said it is readable:
    in canonical mode a line, and b"" (the end) for Ctrl-D at the start of a
    line; in raw mode whatever bytes have arrived. A terminal that hung up
    (EIO) also reads as the end. None: nothing to read after all."""
    # The loop's readiness may be stale (reported before the last read took
    # the data): ask again, as a read would block the loop (the terminal is
    # left blocking, see ``read_chunks``).
    if not select.select([fd], [], [], 0)[0]:
        return None
    try:
        return os.read(fd, CHUNK_SIZE)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise
