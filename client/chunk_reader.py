"""``ChunkReader``: the connection's socket reader, handing over what the
socket gave, as it gave it.

``asyncio.StreamReader`` appends every received chunk to one bytearray and
slices each ``read()`` out of it, then moves the rest of the buffer down: three
copies of every byte before the frame decoder sees it. The decoder keeps the
chunks it is fed as they are (``rexec.protocol.FrameDecoder``), so here a
``read()`` returns the next received ``bytes`` object itself. The socket is
asked for 256 KiB per receive (the transport's own size, ``RECV_SIZE``): asking
for a whole frame (1 MiB) saved a few event-loop turns but raised a get's peak
RSS past 64 MiB (61–68 MiB against 57–59, bench/run.py and ``time -f %M``).

Only ``read()`` is supported (the connection and the handshake use nothing
else). Flow control is the ``StreamReader``'s: the transport is paused once
more than twice ``limit`` bytes are held unread, and resumed when a read brings
them to ``limit`` or less, so a caller that stops reading still stops the
socket (the client's backpressure on a command's output).
"""

from __future__ import annotations

import asyncio
from collections import deque

#: Bytes asked of the socket per receive: asyncio's selector transport's
#: ``max_size`` (see the module docstring for why not a whole frame).
RECV_SIZE = 256 * 1024
#: Unread bytes above twice which the socket is paused (as ``StreamReader``'s
#: ``limit``): at most 512 KiB and one receive held.
HOLD_LIMIT = 256 * 1024
#: A body at least this large is written apart from its header rather than
#: copied into one buffer with it (``ClientConnection.send_nowait``).
BODY_APART = 64 * 1024


class ChunkReader(asyncio.StreamReader):
    """A ``StreamReader`` whose ``read(n)`` returns received chunks uncopied
    (a chunk larger than ``n`` is split)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit=limit)
        self._chunks: deque[bytes] = deque()
        self._held = 0  # bytes in _chunks

    def feed_data(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(bytes(data))  # a no-op for bytes, the common case
        self._held += len(data)
        self._wakeup_waiter()  # type: ignore[attr-defined]
        if self._transport is not None and not self._paused and self._held > 2 * self._limit:  # type: ignore[attr-defined]
            self._transport.pause_reading()  # type: ignore[attr-defined]
            self._paused = True

    def at_eof(self) -> bool:
        return self._eof and not self._held  # type: ignore[attr-defined]

    async def read(self, n: int = -1) -> bytes:
        """The next received chunk, or its first ``n`` bytes (``n`` > 0);
        b"" at EOF. ``n`` < 0 is "any size", not "until EOF"."""
        if self._exception is not None:  # type: ignore[attr-defined]
            raise self._exception  # type: ignore[attr-defined]
        if n == 0:
            return b""
        if not self._chunks and not self._eof:  # type: ignore[attr-defined]
            await self._wait_for_data("read")  # type: ignore[attr-defined]
        if not self._chunks:
            return b""
        chunk = self._chunks.popleft()
        if 0 < n < len(chunk):
            self._chunks.appendleft(chunk[n:])
            chunk = chunk[:n]
        self._held -= len(chunk)
        if self._paused and self._held <= self._limit:  # type: ignore[attr-defined]
            self._paused = False
            self._transport.resume_reading()  # type: ignore[attr-defined]
        return chunk


async def open_connection(
    host: str, port: int, *, limit: int, **kwargs: object
) -> tuple[ChunkReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` with a ``ChunkReader``."""
    loop = asyncio.get_running_loop()
    reader = ChunkReader(limit)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.create_connection(lambda: protocol, host, port, **kwargs)  # type: ignore[arg-type]
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
