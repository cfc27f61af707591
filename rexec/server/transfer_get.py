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
        on_file: called with the size, mode and mtime, before any data.
        on_data: called with each chunk, in order.
        on_finish: called once, after the last ``on_data``.
    """

    def __init__(
        self,
        get: Get,
        path: str,
        place: Place,
        *,
        on_file: Callable[[int, int, float], None],
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
        size = info.st_size
        if self._offset > size:
            raise TransferError(ErrorCode.FILE_SIZE_MISMATCH, "the file is shorter than the offset")
        self._on_file(size, stat.S_IMODE(info.st_mode), info.st_mtime)
        digest = hashlib.sha256()
        done = 0
        while done < self._offset:  # hashed, not sent: the client holds it
            chunk = await self._io(_read_chunk, self._fd, min(CHUNK_SIZE, self._offset - done),
                                   digest)  # fmt: skip
            if not chunk:
                raise TransferError(ErrorCode.FILE_SIZE_MISMATCH, "the file shrank while read")
            done += len(chunk)
            self._check_abort()
        await self._stream(size, done, digest)
        return size, digest.hexdigest()

    async def _stream(self, size: int, offset: int, digest: Any) -> None:
        ahead: asyncio.Future[bytes] | None = None

        def read_ahead() -> asyncio.Future[bytes] | None:
            if offset >= size:
                return None
            return self._loop.run_in_executor(
                None, _read_chunk, self._fd, min(CHUNK_SIZE, size - offset), digest
            )

        try:
            ahead = read_ahead()
            while ahead is not None:
                chunk = await self._io_result(ahead)
                if not chunk:
                    raise TransferError(
                        ErrorCode.FILE_SIZE_MISMATCH, "the file shrank while it was read"
                    )
                offset += len(chunk)
                self._check_abort()
                # The next chunk is read (and hashed) while this one is sent.
                ahead = read_ahead()
                self._on_data(chunk)
                while self._paused:
                    self._wake.clear()
                    await self._wake.wait()
                    self._check_abort()
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
