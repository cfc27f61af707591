"""The remote shell's output, copied to the local terminal with its line
markers taken out.

The remote shell's stdout and stderr live as long as the session: a line's
output is whatever arrives between the line being sent and its end marker
(see ``remote.bash``). The marker is a fresh random string the remote shell
learns only once the line has ended, so a command of the line can't print it;
``MarkedStream`` removes exactly that string and reports that it came, and
passes every other byte through, in order, as it arrives. Only while a
marker is awaited are trailing bytes that could be its beginning held back
until the next chunk shows whether they are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..streams import OutputReader

#: How much is read at once.
CHUNK_SIZE = 2**20


class StreamEnded(Exception):
    """The stream ended before the awaited marker came."""


def _held_back(data: bytes, marker: bytes) -> int:
    """How many bytes at the end of ``data`` are a proper beginning of
    ``marker`` (and so must wait for the next chunk)."""
    for size in range(min(len(data), len(marker) - 1), 0, -1):
        if marker.startswith(data[-size:]):
            return size
    return 0


class MarkedStream:
    """Copies ``reader`` to ``write`` as chunks arrive, taking out the marker
    it is told to expect (``expect``).

    Args:
        reader: one output stream of the remote shell.
        write: shows bytes locally (awaited, so that the prompt can step aside).
    """

    def __init__(self, reader: OutputReader, write: Callable[[bytes], Awaitable[None]]) -> None:
        self._reader = reader
        self._show = write
        #: When output was last shown (``time.monotonic``; 0 before any).
        self.shown_at = 0.0
        self._marker = b""
        self._seen: asyncio.Future[None] | None = None
        self._held = b""
        self._ended = False

    def expect(self, marker: bytes) -> asyncio.Future[None]:
        """A future done when ``marker`` has come (and everything before it
        has been written). Ask before sending what makes the marker come."""
        seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._ended:
            seen.set_exception(StreamEnded())
        else:
            self._marker, self._seen = marker, seen
        return seen

    def not_coming(self) -> None:
        """The awaited marker will not come: its future is done now."""
        if self._seen is not None and not self._seen.done():
            self._seen.set_result(None)
        self._seen = None

    async def run(self) -> None:
        """Copy until the stream ends; then an awaited marker fails with
        ``StreamEnded``."""
        try:
            while chunk := await self._reader.read(CHUNK_SIZE):
                await self._take(self._held + chunk)
            if self._held:
                await self._write(self._held)
        finally:
            self._ended = True
            self._held = b""
            if self._seen is not None and not self._seen.done():
                self._seen.set_exception(StreamEnded())
                # Nobody may be waiting any more (the line was abandoned).
                self._seen.exception()

    async def _write(self, data: bytes) -> None:
        self.shown_at = time.monotonic()
        await self._show(data)

    async def _take(self, data: bytes) -> None:
        self._held = b""
        if self._seen is None:
            await self._write(data)
            return
        found = data.find(self._marker)
        if found >= 0:
            before, after = data[:found], data[found + len(self._marker) :]
            if before:
                await self._write(before)
            if not self._seen.done():
                self._seen.set_result(None)
            self._seen = None
            if after:
                await self._write(after)
            return
        keep = _held_back(data, self._marker)
        if len(data) > keep:
            await self._write(data[: len(data) - keep])
        self._held = data[len(data) - keep :]


def forget(future: asyncio.Future[Any]) -> None:
    """Stop waiting for ``future``: cancel it, and take its exception (so
    that asyncio does not report it as never retrieved).

    A cancelled ``gather`` does not end cancelled: it ends later, once its
    children have, with a ``CancelledError`` as its *exception*, which is
    taken when it comes (a line that needs a continuation line forgets its
    ``ending`` gather this way at every ``> `` prompt)."""
    future.cancel()
    future.add_done_callback(_take_exception)


def _take_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
