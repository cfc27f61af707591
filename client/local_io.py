"""Reading the local standard input without blocking the event loop."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator

CHUNK_SIZE = 64 * 1024


async def read_chunks(fd: int) -> AsyncIterator[bytes]:
    """Yield what can be read from ``fd`` until EOF.

    Pipes, sockets and terminals are read through the event loop. Other files
    (regular files, ``/dev/null``) can't be polled, but reading them never
    waits long, so they are read directly.
    """
    pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
    with pipe:
        mode = os.fstat(pipe.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(pipe.fileno())):
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
            # The transport made the file description non-blocking; a terminal
            # shares it with the shell, which expects it blocking again.
            os.set_blocking(fd, True)
