"""A remote command's output streams, as asyncio-style readers.

Each ``OutputReader`` buffers what the connection received for one stream of
one command until the user reads it. The buffer is bounded from outside: the
connection stops reading its socket while a command's unread output is above
its high-water mark (see ``ClientConnection``), so TCP backpressure reaches the
server and the command blocks on its writes, as it would on a full pipe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import BinaryIO


class OutputReader:
    """The stdout or stderr of one remote command.

    Args:
        on_consumed: called after the reader takes bytes out of the buffer,
            so the connection can resume reading its socket.
        line_limit: ``readline`` returns a partial line once this many bytes
            are buffered without a newline, because no more will arrive until
            some are read.
    """

    def __init__(self, on_consumed: Callable[[], None], line_limit: int) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._changed = asyncio.Event()
        self._on_consumed = on_consumed
        self._line_limit = line_limit
        #: Body bytes received for this stream so far.
        self.received = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return len(self._buffer)

    def at_eof(self) -> bool:
        """True once the stream has ended and every byte has been read."""
        return self._eof and not self._buffer

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (at least one, unless at EOF: then b"").
        With ``n`` < 0, read until EOF and return everything."""
        if n < 0:
            chunks = []
            while chunk := await self.read(2**20):
                chunks.append(chunk)
            return b"".join(chunks)
        await self._wait_until(lambda: bool(self._buffer) or self._eof)
        return self._take(min(n, len(self._buffer)))

    async def readline(self) -> bytes:
        """Read one line including its b"\\n"; at EOF, what is left (maybe
        b""). A line longer than the line limit comes back in pieces."""
        await self._wait_until(
            lambda: b"\n" in self._buffer or self._eof or len(self._buffer) >= self._line_limit
        )
        end = self._buffer.find(b"\n")
        return self._take(len(self._buffer) if end < 0 else end + 1)

    async def copy_to(self, file: BinaryIO) -> int:
        """Write every chunk to ``file`` as it arrives, flushing each one, until
        EOF; return the byte count. Errors of ``file`` (such as
        ``BrokenPipeError``) propagate."""
        total = 0
        while chunk := await self.read(2**20):
            file.write(chunk)
            file.flush()
            total += len(chunk)
        return total

    def __aiter__(self) -> OutputReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # --- fed by the connection ----------------------------------------------

    def feed_data(self, data: bytes) -> None:
        self._buffer += data
        self.received += len(data)
        self._changed.set()

    def feed_eof(self) -> None:
        self._eof = True
        self._changed.set()

    # --- internals -------------------------------------------------------------

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            self._changed.clear()
            await self._changed.wait()

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        if data:
            self._on_consumed()
        return data
