"""A get: a regular file beneath the roots streamed out in chunks, one read
ahead, paused while the client is not reading (rexec/server/transfer_io.py
says how the file I/O runs and how memory stays bounded).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Callable
from typing import Any, TypeVar

from rexec.files import open_path
from rexec.protocol import ErrorCode, Get
from rexec.server.transfer_io import (
    CHUNK_SIZE,
    FileTransfer,
    FinishCallback,
    Place,
    TransferError,
    file_error,
)

_T = TypeVar("_T")

#: The most a pseudo file's status claims: /proc's files say 0, /sys's a
#: page.
PSEUDO_FILE_SIZE = 4096


def _open_source(path: str, place: Place) -> tuple[int, os.stat_result]:
    """Open a regular file for reading, within the roots; returns its
    descriptor and status."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
    # below); it changes nothing for a regular file.
    fd = open_path(path, place.roots, base=place.home,
                   flags=os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)  # fmt: skip
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise TransferError(ErrorCode.FILE_IS_DIRECTORY, "the source is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise TransferError(ErrorCode.FILE_FAILED, "the source is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _read_head(fd: int) -> tuple[bytes, bool]:
    """Up to ``CHUNK_SIZE`` bytes from the start, and whether that was all
    (short reads do not say so: a /proc file gives a page at a time)."""
    parts: list[bytes] = []
    got = 0
    while got < CHUNK_SIZE:
        part = os.read(fd, CHUNK_SIZE - got)
        if not part:
            return b"".join(parts), True
        parts.append(part)
        got += len(part)
    return b"".join(parts), False


def _read_chunk(fd: int, size: int, digest: Any) -> bytes:
    data = os.read(fd, size)
    digest.update(data)
    return data


class GetTransfer(FileTransfer):
    """Streams a file: ``file``, its bytes from the get's offset in chunks,
    then ``done`` with the size and digest of the whole file.

    Args:
        get: the request.
        path: its path as the client gave it.
        place: the roots and home it resolves in.
        on_file: called with the size (None: not known until the end),
            mode and mtime, before any data.
        on_data: called with each chunk, in order.
        on_finish: called once, after the last ``on_data``.
    """

    def __init__(
        self,
        get: Get,
        path: str,
        place: Place,
        *,
        on_file: Callable[[int | None, int, float], None],
        on_data: Callable[[bytes], None],
        on_finish: FinishCallback,
    ) -> None:
        super().__init__(path, place, on_finish)
        self._offset = get.offset
        self._on_file = on_file
        self._on_data = on_data
        self._paused = False
        self._fd = -1

    def pause_output(self) -> None:
        self._paused = True

    def resume_output(self) -> None:
        self._paused = False
        self._wake.set()

    async def _transfer(self) -> tuple[int, str]:
        self._fd, info = await self._io(_open_source, self.path, self.place)
        self._check_abort()
        size: int | None = info.st_size
        head = b""
        if not info.st_blocks and info.st_size <= PSEUDO_FILE_SIZE:
            # A small file with no blocks may not know its size: /proc's say
            # 0 and /sys's 4096, whatever they hold. Read first: one that
            # ends within a chunk announces its real size; a longer one
            # announces none and is read to its end, and done says how long
            # it was. (A large sparse file knows its size.)
            head, ended = await self._io(_read_head, self._fd)
            self._check_abort()
            size = len(head) if ended else None
        if size is not None and self._offset > size:
            raise TransferError(ErrorCode.FILE_SIZE_MISMATCH, "the file is shorter than the offset")
        self._on_file(size, stat.S_IMODE(info.st_mode), info.st_mtime)
        digest = hashlib.sha256(head)
        done = len(head)
        if self._offset < done:
            await self._send(head[self._offset :])
        while done < self._offset:  # hashed, not sent: the client holds it
            chunk = await self._io(_read_chunk, self._fd, min(CHUNK_SIZE, self._offset - done),
                                   digest)  # fmt: skip
            if not chunk:
                raise TransferError(ErrorCode.FILE_SIZE_MISMATCH, "the file shrank while read")
            done += len(chunk)
            self._check_abort()
        return await self._stream(size, done, digest), digest.hexdigest()

    async def _stream(self, size: int | None, offset: int, digest: Any) -> int:
        """Send from ``offset`` to ``size`` (to the end when None); returns
        the bytes of the whole file."""
        ahead: asyncio.Future[bytes] | None = None

        def read_ahead() -> asyncio.Future[bytes] | None:
            if size is not None and offset >= size:
                return None
            want = CHUNK_SIZE if size is None else min(CHUNK_SIZE, size - offset)
            return self._loop.run_in_executor(None, _read_chunk, self._fd, want, digest)

        try:
            ahead = read_ahead()
            while ahead is not None:
                chunk = await self._io_result(ahead)
                if not chunk and size is None:
                    break  # the end of a file of unknown size
                if not chunk:
                    raise TransferError(
                        ErrorCode.FILE_SIZE_MISMATCH, "the file shrank while it was read"
                    )
                offset += len(chunk)
                self._check_abort()
                # The next chunk is read (and hashed) while this one is sent.
                ahead = read_ahead()
                await self._send(chunk)
        finally:
            if ahead is not None and not ahead.done():
                # Our descriptor is closed next: let the thread finish with it.
                try:
                    await asyncio.wait([ahead])
                except asyncio.CancelledError:
                    self._abandoned = True
                    raise
            if ahead is not None and ahead.done() and not ahead.cancelled():
                ahead.exception()  # retrieved: an error of an unwanted read is not news
        return offset

    async def _send(self, chunk: bytes) -> None:
        """Hand ``chunk`` on, then wait while the client is not reading."""
        self._on_data(chunk)
        while self._paused:
            self._wake.clear()
            await self._wake.wait()
            self._check_abort()

    async def _io_result(self, future: asyncio.Future[_T]) -> _T:
        """Await a file operation started earlier with ``run_in_executor``,
        as ``_io`` does."""
        try:
            return await future
        except asyncio.CancelledError:
            self._abandoned = True
            raise
        except OSError as exc:
            raise file_error(exc) from None

    def _cleanup(self) -> None:
        if self._fd >= 0 and not self._abandoned:
            os.close(self._fd)
        self._fd = -1
