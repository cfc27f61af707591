"""A remote command's output streams, as asyncio-style readers.

Each ``OutputReader`` buffers what the connection received for one stream of
one command until the user reads it. The buffer is bounded from outside: the
connection stops reading its socket while a command's unread output is above
its high-water mark (see ``ClientConnection``), so TCP backpressure reaches the
server and the command blocks on its writes, as it would on a full pipe.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

from rexec.eventloop import pin_allocator

#: A read hands a buffered body of at least this size over by itself rather
#: than joining it with the next ones (a copy that buys nothing at this size).
_WHOLE_BODY = 64 * 1024


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
        # The received bodies as they came: a read of a whole body hands that
        # very object over, with no copy (the common case for bulk output).
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._head = 0  # bytes of the first chunk already read
        self._eof = False
        self._changed = asyncio.Event()
        self._on_consumed = on_consumed
        self._line_limit = line_limit
        #: Body bytes received for this stream so far.
        self.received = 0
        self._through: Callable[[bytes], None] | None = None  # see write_through
        self._failure: Exception | None = None  # of the write-through, for read()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return self._size

    def at_eof(self) -> bool:
        """True once the stream has ended and every byte has been read."""
        return self._eof and not self._size

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (at least one, unless at EOF: then b"").
        With ``n`` < 0, read until EOF and return everything."""
        if n < 0:
            chunks = []
            while chunk := await self.read(2**20):
                chunks.append(chunk)
            return b"".join(chunks)
        await self._wait_until(lambda: bool(self._size) or self._eof or self._failure is not None)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        first = len(self._chunks[0]) - self._head if self._chunks else 0
        if _WHOLE_BODY <= first <= n:
            return self._take(first)  # one large body as it came: handed over, not copied
        return self._take(min(n, self._size))

    async def readline(self) -> bytes:
        """Read one line including its b"\\n"; at EOF, what is left (maybe
        b""). A line longer than the line limit comes back in pieces."""
        await self._wait_until(
            lambda: self._line_end() >= 0 or self._eof or self._size >= self._line_limit
        )
        end = self._line_end()
        return self._take(self._size if end < 0 else end)

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

    def write_through(self, write: Callable[[bytes], None]) -> None:
        """Hand each chunk to ``write`` as it is received, in the connection's
        reader, instead of buffering it for a reading task to wake up for:
        for a terminal relay, where that wake-up is part of every echo's
        latency. What is buffered already goes first. ``write`` is the only
        consumer: it must not block on anyone but the local terminal, as the
        reading task's own writes did. If it raises, writing through stops:
        the next ``read()`` raises that error, and the chunks after it are
        buffered for ``read()`` as before (a relay drains them)."""
        self._through = write
        if self._size:
            self._pass_through(self._take(self._size))

    def __aiter__(self) -> OutputReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # --- fed by the connection ----------------------------------------------

    def feed_data(self, data: bytes) -> None:
        if len(data) >= _WHOLE_BODY:
            pin_allocator()  # bulk output: keep its megabyte buffers in the heap (idempotent)
        if data and self._through is not None:
            self.received += len(data)
            self._pass_through(bytes(data))
            return
        if data:
            self._chunks.append(bytes(data))  # a no-op for bytes; a view is copied once
            self._size += len(data)
        self.received += len(data)
        self._changed.set()

    def feed_eof(self) -> None:
        self._eof = True
        self._changed.set()

    # --- internals -------------------------------------------------------------

    def _pass_through(self, data: bytes) -> None:
        assert self._through is not None
        try:
            self._through(data)
        except Exception as exc:  # the write's own error, raised again by read()
            self._through = None
            self._failure = exc
            self._changed.set()

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            self._changed.clear()
            await self._changed.wait()

    def _line_end(self) -> int:
        """The offset just past the first buffered b"\\n", or -1."""
        offset = -self._head
        for i, chunk in enumerate(self._chunks):
            end = chunk.find(b"\n", self._head if i == 0 else 0)
            if end >= 0:
                return offset + end + 1
            offset += len(chunk)
        return -1

    def _take(self, n: int) -> bytes:
        """The first ``n`` buffered bytes (``n`` <= what is buffered). The
        first chunk is consumed through an offset (``_head``), so reading it
        a line at a time copies each line once, not the rest of the chunk."""
        if n <= 0:
            return b""
        parts = []
        left = n
        while left:
            chunk = self._chunks[0]
            available = len(chunk) - self._head
            if self._head == 0 and available <= left:
                parts.append(chunk)  # the whole body: no copy
            else:
                parts.append(chunk[self._head : self._head + min(left, available)])
            if available <= left:
                self._chunks.popleft()
                self._head = 0
                left -= available
            else:
                self._head += left
                left = 0
        self._size -= n
        self._on_consumed()
        return parts[0] if len(parts) == 1 else b"".join(parts)
