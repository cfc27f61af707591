"""``put``: a local file (or a stream, such as standard input) to the server.

The file is read once. A reader thread reads it in frames of the server's
body limit and hashes each chunk as it goes (hashlib releases the GIL), a few
chunks ahead of the event loop, which sends them under the server's stdin
credit. The size, when known (a regular file), goes in the ``put``; the
SHA-256 goes in its ``stdin_eof`` ([transfer.put.end]), so no pass over the
file precedes the first byte sent. The server checks both before the file
takes its final name, and its ``done`` is checked against ours.

A regular file is sent as it is when opened: bytes appended later are not
sent, and a file that shrinks fails with ``local.changed``. With ``resume``
the server keeps what it received when the transfer is cut off, and the next
``put`` of the same file (same path, size, modification time and inode)
continues from there; the whole is still verified end to end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import stat
import threading
import time
from typing import TYPE_CHECKING, BinaryIO

from rexec.eventloop import bulk_moved, bulk_over
from rexec.protocol import Put, Stdin, StdinEof

from .channel import DEFAULT_STALL_TIMEOUT, Channel, Progress, TransferResult, remote_path
from .errors import TransferError, local_error

if TYPE_CHECKING:
    from ..connection import ClientConnection

#: Chunks read (and hashed) ahead of the one being sent: enough that the
#: reader thread never waits for the loop, few enough to bound memory (each
#: is at most the server's body limit, 1 MiB).
READ_AHEAD = 3
#: Unread output is not expected on a put; the channel needs some bound.
_PUT_HIGH_WATER = 1 << 20
#: Mode of a file put from a stream, before the umask (as a shell's ``>``).
STREAM_MODE = 0o666


@dataclasses.dataclass
class Source:
    """The local side of a put: a descriptor and what is known of it."""

    fd: int
    name: str
    size: int | None  # None: a stream, read to its end
    mode: int
    mtime: float
    identity: str  # what a resume key is made of
    owned: bool  # closed by us

    @classmethod
    def open(cls, local: str | os.PathLike[str] | BinaryIO) -> Source:
        """Open a path (a regular file), or take a binary stream's descriptor.

        Raises:
            TransferError: ``local.*`` for a missing, unreadable, directory
                or special file.
        """
        if isinstance(local, (str, os.PathLike)):
            try:
                fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError as exc:
                raise local_error(exc) from None
            name, owned = os.fsdecode(local), True
        else:
            fd, name, owned = local.fileno(), "-", False
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            if owned:
                os.set_blocking(fd, True)
            return cls(
                fd, name, info.st_size, stat.S_IMODE(info.st_mode), info.st_mtime,
                f"{os.path.realpath(name) if owned else fd}\0{info.st_dev}\0{info.st_ino}\0"
                f"{info.st_size}\0{info.st_mtime_ns}", owned,
            )  # fmt: skip
        if owned:
            os.close(fd)
            if stat.S_ISDIR(info.st_mode):
                raise TransferError("local.is_directory", "is a directory", remote=False)
            raise TransferError("local.failed", "not a regular file", remote=False)
        umask = os.umask(0)
        os.umask(umask)
        return cls(fd, name, None, STREAM_MODE & ~umask, time.time(), "", owned)

    def resume_key(self) -> str:
        if self.size is None:
            raise TransferError("local.failed", "a stream can't be resumed", remote=False)
        return hashlib.sha256(self.identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def close(self) -> None:
        if self.owned:
            os.close(self.fd)


class _Reader:
    """A thread reading and hashing the source in order, ``READ_AHEAD``
    chunks ahead; the loop takes them with ``next``. The first ``skip``
    bytes (what a resumed put's server holds) are hashed, not handed out."""

    def __init__(self, source: Source, chunk_size: int, skip: int) -> None:
        self.digest = hashlib.sha256()
        self.read = 0
        self._source = source
        self._chunk_size = chunk_size
        self._skip = skip
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._slots = threading.Semaphore(READ_AHEAD)
        self._stop = threading.Event()
        self._done = self._loop.create_future()
        # A daemon thread, not the loop's executor: a read of a stream that
        # never ends (a terminal, an idle pipe) must not keep the program
        # from exiting once the transfer has failed.
        threading.Thread(target=self._run, name="rexec-put-reader", daemon=True).start()

    def _run(self) -> None:
        try:
            self._read_all()
        finally:
            self._loop.call_soon_threadsafe(self._done.set_result, None)

    def _read_all(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._read_chunk()
                if chunk is None:
                    self._hand(None)
                    return
                self.digest.update(chunk)
                self.read += len(chunk)
                if self.read <= self._skip:
                    continue
                if self.read - len(chunk) < self._skip:
                    chunk = chunk[self._skip - (self.read - len(chunk)) :]
                self._slots.acquire()
                self._hand(chunk)
        except OSError as exc:
            self._hand(local_error(exc))
        except Exception as exc:  # noqa: BLE001 -- TransferError, or a bug: the loop must hear it
            self._hand(exc)

    def _read_chunk(self) -> bytes | None:
        """The next chunk (as full as the source gives), or None at its end."""
        size = self._source.size
        want = self._chunk_size if size is None else min(self._chunk_size, size - self.read)
        if want <= 0:
            return None
        parts: list[bytes] = []
        got = 0
        while got < want and not self._stop.is_set():
            if size is None:
                part = os.read(self._source.fd, want - got)
            else:
                part = os.pread(self._source.fd, want - got, self.read + got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        if got < want and size is not None and not self._stop.is_set():
            raise TransferError("local.changed", "the file shrank while it was sent",
                                remote=False)  # fmt: skip
        return b"".join(parts) if got else None

    def _hand(self, item: bytes | BaseException | None) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def next(self) -> bytes | None:
        """The next chunk to send, or None at the end."""
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if item is not None:
            self._slots.release()
        return item

    async def close(self) -> None:
        """Stop the thread; wait for it when it reads a descriptor we close
        next (a stream's read may never return, and the stream is not ours)."""
        self._stop.set()
        self._slots.release(READ_AHEAD)
        if self._source.owned:
            await asyncio.wait([self._done])


async def put(
    conn: ClientConnection,
    local: str | os.PathLike[str] | BinaryIO,
    remote: str,
    *,
    mode: int | None = None,
    preserve_mtime: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
) -> TransferResult:
    """Copy ``local`` (a path, or a binary stream such as
    ``sys.stdin.buffer``, read to its end) to ``remote`` on the server.

    ``remote`` names the file itself (a directory there is
    ``file.is_directory``); relative paths, ``~`` and ``~/…`` are relative
    to the server account's home. The file gets ``mode`` exactly (default:
    the local file's permission bits; for a stream, 0666 less the umask),
    and with ``preserve_mtime`` the local file's modification time. A
    server that sends nothing for it (credit, its ``done``) for
    ``stall_timeout`` seconds (None: no limit) fails it with
    ``transfer.stalled``.

    Raises:
        TransferError: a local or remote failure (see its ``code``).
        RexecConnectionError: the connection is or got lost.
    """
    started = time.monotonic()
    path = remote_path(remote)
    source = Source.open(local)
    try:
        command_id = conn.next_command_id()
        channel = Channel(_PUT_HIGH_WATER, stall_timeout)
        message = Put(
            id=command_id, path=path, size=source.size,
            mode=source.mode if mode is None else mode,
            mtime=source.mtime if preserve_mtime else None,
            resume=source.resume_key() if resume else None,
        )  # fmt: skip
        await conn.open_transfer(message, channel)
        try:
            offset = 0
            if resume:
                await channel.wait_until(lambda: channel.file is not None)
                channel.raise_error()
                assert channel.file is not None
                offset = channel.file.size or 0
            reader = _Reader(source, conn.max_body, offset)
            try:
                await _send(conn, command_id, channel, reader, offset, source.size, progress)
            finally:
                await reader.close()
            if not channel.finished:
                sha256 = reader.digest.hexdigest()
                await conn.send(StdinEof(
                    id=command_id, sha256=sha256,
                    size=reader.read if source.size is None else None,
                ))  # fmt: skip
            await channel.wait_until(lambda: False)
        except BaseException:
            channel.cancel(conn, command_id)
            raise
        channel.raise_error()
        assert channel.done is not None
        if (channel.done.size, channel.done.sha256) != (reader.read, sha256):
            raise TransferError("file.digest_mismatch",
                                "the server's sha256 is not the one sent", remote=True)  # fmt: skip
    finally:
        source.close()
        bulk_over()  # after bulk, the freed heap goes back (rexec/eventloop.py)
    return TransferResult(
        "put", source.name, remote, reader.read, sha256, message.mode,
        time.monotonic() - started, offset,
    )  # fmt: skip


async def _send(
    conn: ClientConnection,
    command_id: int,
    channel: Channel,
    reader: _Reader,
    sent: int,
    total: int | None,
    progress: Progress | None,
) -> None:
    """Send what the reader gives (from byte ``sent`` on), under credit,
    until its end or the server's (an error, reported by the caller)."""
    while (chunk := await reader.next()) is not None:
        view = memoryview(chunk)
        while view:
            if channel.finished:
                return
            credit = conn.stdin_credit(command_id)
            if not credit:
                await channel.wait()
                continue
            piece = view[:credit]
            # Stdin.with_data takes any bytes-like body: a memoryview slice
            # saves copying the chunk when the credit splits it.
            await conn.send(Stdin.with_data(command_id, piece))  # type: ignore[arg-type]
            view = view[len(piece) :]
        sent += len(chunk)
        bulk_moved(len(chunk))
        if progress is not None:
            progress(sent, total)
