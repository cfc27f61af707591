"""File transfer over a ``ClientConnection``: ``put`` a local file on the
server, ``get`` a server file here (protocol.md 5.6).

    >>> async with await rexec_client.connect(host, port, key) as conn:
    ...     result = await put(conn, "data.bin", "/srv/data.bin")
    ...     result = await get(conn, "/var/log/syslog", "syslog")
    >>> result.size, result.sha256, result.mb_per_s

Both stream with bounded memory, whatever the file's size:

* ``put`` reads the file twice: once to hash it (the protocol wants the size
  and SHA-256 in the ``put`` header, before any data), then to send it in
  frames of the server's body limit, under the server's stdin credit, the
  next chunk read in a thread while the current one is sent. The server
  checks the size and digest before the file takes its final name; its
  ``done`` is checked against ours too.
* ``get`` writes what arrives into a new temporary file beside the target
  (``.NAME.rexec-XXXXXXXX.tmp``, mode 0600), hashing as it writes, in a
  thread; at ``done`` it checks size and SHA-256, sets the file's mode (the
  server's, exactly: umask not applied), ``fsync``s and renames it into place.
  A failed, cancelled or interrupted ``get`` never leaves a file under the
  final name (a process killed with SIGKILL can leave its temporary file).
  Unread data is bounded: above ``GET_HIGH_WATER`` bytes waiting to be
  written, the connection stops reading its socket.

Failures raise ``TransferError`` (``code`` is the server's, such as
``file.not_found``, or a ``local.*`` one for this side's file system, or
``file.digest_mismatch`` when a get's bytes do not match the server's
digest); a lost connection raises ``RexecConnectionError``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import errno
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rexec.protocol import (
    Cancel,
    Done,
    Error,
    File,
    Get,
    LocalProtocolError,
    Put,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
)

from ..errors import RexecConnectionError, RexecError

if TYPE_CHECKING:
    from ..connection import ClientConnection

#: Bytes of a get received but not yet written above which the connection
#: stops reading its socket (it resumes at half).
GET_HIGH_WATER = 8 * 1024 * 1024
#: Bytes read per call while hashing a file before a put.
HASH_CHUNK = 1024 * 1024
#: How many bytes of the target's name the temporary file's name keeps.
_TEMP_NAME_BUDGET = 200

#: ``progress(bytes_done, bytes_total)``, called as data moves.
Progress = Callable[[int, int], None]


class TransferError(RexecError):
    """A transfer failed; the connection carries on.

    Attributes:
        code: the server's error code (``file.not_found``,
            ``file.permission_denied``, ``file.is_directory``,
            ``file.digest_mismatch``, ``file.size_mismatch``, ``file.failed``,
            ``file.cancelled``, ``busy`` …) or, for this side's file system,
            ``local.not_found``, ``local.permission_denied``,
            ``local.is_directory``, ``local.changed`` (the file changed while
            it was sent) or ``local.failed``.
        message: a short explanation, without the path.
        remote: True when the server reported it.
    """

    def __init__(self, code: str, message: str, *, remote: bool) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.remote = remote


@dataclasses.dataclass(frozen=True)
class TransferResult:
    """A transfer that succeeded.

    Attributes:
        direction: ``"put"`` or ``"get"``.
        local_path, remote_path: as given.
        size: bytes transferred; sha256: their digest (checked end to end).
        mode: the permission bits the file got.
        seconds: wall time of the whole transfer (for a put, including the
            hashing pass, which took ``hash_seconds`` of it).
    """

    direction: str
    local_path: str
    remote_path: str
    size: int
    sha256: str
    mode: int
    seconds: float
    hash_seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes per second)."""
        return self.size / 1e6 / self.seconds if self.seconds > 0 else 0.0


def local_error(exc: OSError) -> TransferError:
    """The ``TransferError`` for a local file-system failure."""
    name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    code = {
        errno.ENOENT: "local.not_found",
        errno.ENOTDIR: "local.not_found",
        errno.EACCES: "local.permission_denied",
        errno.EPERM: "local.permission_denied",
        errno.EISDIR: "local.is_directory",
    }.get(exc.errno or 0, "local.failed")
    return TransferError(code, f"{reason} ({name})" if code == "local.failed" else reason,
                         remote=False)  # fmt: skip


class _Channel:
    """The frames of one transfer's id, as the connection hands them over
    (``CommandHandler``); the transfer coroutine waits on ``changed``."""

    def __init__(self, high_water: int) -> None:
        self.file: File | None = None
        self.done: Done | None = None
        self.error: BaseException | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self._high_water = high_water
        self._changed = asyncio.Event()
        self._room = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.done is not None or self.error is not None

    # --- CommandHandler --------------------------------------------------------

    def handle(self, message: object) -> None:
        if isinstance(message, Stdout):
            self.chunks.append(message.data)
            self.buffered += len(message.data)
        elif isinstance(message, File):
            self.file = message
        elif isinstance(message, Done):
            self.done = message
        elif isinstance(message, Error):
            self.error = TransferError(message.code, message.message, remote=True)
        elif not isinstance(message, StdinCredit):  # credit is counted by the protocol state
            return
        self._changed.set()
        if self.finished:
            self._room.set()

    def connection_lost(self, error: RexecConnectionError) -> None:
        if not self.finished:
            self.error = error
        self._changed.set()
        self._room.set()

    @property
    def needs_room(self) -> bool:
        return self.buffered > self._high_water

    async def wait_for_room(self) -> None:
        while self.buffered > self._high_water // 2 and not self.finished:
            self._room.clear()
            await self._room.wait()

    # --- for the transfer ------------------------------------------------------

    async def wait(self) -> None:
        """Wait until some frame (or the end) has arrived since the last wait."""
        await self._changed.wait()
        self._changed.clear()

    def take(self) -> list[bytes]:
        chunks = list(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        self._room.set()
        return chunks


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run a file operation in the default executor. If the caller is
    cancelled meanwhile, wait for the thread to return before passing the
    cancellation on: it may be using a descriptor the caller closes next."""
    future = asyncio.get_running_loop().run_in_executor(None, function, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def _cancel(conn: ClientConnection, command_id: int, channel: _Channel) -> None:
    """Ask the server to end the transfer, unless it has already ended."""
    if channel.finished:
        return
    try:
        conn.send_nowait(Cancel(id=command_id))
    except (LocalProtocolError, RexecConnectionError):
        pass  # it has just ended, or the connection has gone: either way, over


# --- put -------------------------------------------------------------------------------


def _open_source(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise local_error(exc) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise TransferError("local.is_directory", "is a directory", remote=False)
        raise TransferError("local.failed", "not a regular file", remote=False)
    return fd, info


def _hash_file(fd: int, size: int) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    offset = 0
    while offset < size:
        n = os.preadv(fd, [view[: min(HASH_CHUNK, size - offset)]], offset)
        if n == 0:
            raise TransferError("local.changed", "the file shrank while it was read",
                                remote=False)  # fmt: skip
        digest.update(view[:n])
        offset += n
    return digest.hexdigest()


def _read_exactly(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:  # a short read of a regular file: rare, but allowed
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise TransferError("local.changed", "the file shrank while it was sent",
                                remote=False)  # fmt: skip
        data += more
    return data


async def put(
    conn: ClientConnection,
    local_path: str | os.PathLike[str],
    remote_path: str,
    *,
    mode: int | None = None,
    progress: Progress | None = None,
) -> TransferResult:
    """Copy the local file ``local_path`` to ``remote_path`` on the server.

    ``remote_path`` names the file itself (a directory there is
    ``file.is_directory``); relative paths are relative to the server's home
    directory. The file gets ``mode`` (default: the local file's permission
    bits), exactly.

    Raises:
        TransferError: a local or remote failure (see its ``code``).
        RexecConnectionError: the connection is or got lost.
    """
    started = time.monotonic()
    fd, info = _open_source(local_path)
    try:
        size = info.st_size
        file_mode = stat.S_IMODE(info.st_mode) if mode is None else mode
        try:
            sha256 = await _in_thread(_hash_file, fd, size)
        except OSError as exc:
            raise local_error(exc) from None
        hashed = time.monotonic()
        command_id = conn.next_command_id()
        channel = _Channel(GET_HIGH_WATER)
        await conn.open_transfer(
            Put(id=command_id, path=remote_path, size=size, mode=file_mode, sha256=sha256),
            channel,
        )
        try:
            await _send_content(conn, command_id, channel, fd, size, progress)
            while not channel.finished:
                await channel.wait()
        except BaseException:
            _cancel(conn, command_id, channel)
            raise
        if channel.error is not None:
            raise channel.error
        assert channel.done is not None
        if channel.done.sha256 != sha256:
            raise TransferError("file.digest_mismatch",
                                "the server's sha256 is not the one sent", remote=True)  # fmt: skip
    finally:
        os.close(fd)
    return TransferResult(
        "put", os.fsdecode(local_path), remote_path, size, sha256, file_mode,
        time.monotonic() - started, hashed - started,
    )  # fmt: skip


async def _send_content(
    conn: ClientConnection,
    command_id: int,
    channel: _Channel,
    fd: int,
    size: int,
    progress: Progress | None,
) -> None:
    """Send ``size`` bytes of ``fd`` under credit, reading one chunk ahead."""
    loop = asyncio.get_running_loop()
    chunk_size = conn.max_body
    offset = 0

    def read_next() -> asyncio.Future[bytes] | None:
        if offset >= size:
            return None
        return loop.run_in_executor(None, _read_exactly, fd, min(chunk_size, size - offset),
                                    offset)  # fmt: skip (awaited below, even on failure)

    pending = read_next()
    sent = 0
    try:
        while pending is not None:
            try:
                chunk = await pending
            except OSError as exc:
                raise local_error(exc) from None
            offset += len(chunk)
            pending = read_next()  # read ahead while this chunk goes out
            view = memoryview(chunk)
            while view:
                if channel.finished:
                    return  # the server ended it (an error): reported by the caller
                credit = conn.stdin_credit(command_id)
                if not credit:
                    await channel.wait()
                    continue
                piece = view[:credit]
                # ``Stdin.with_data`` takes any bytes-like body; a memoryview
                # slice saves copying the chunk when credit splits it.
                await conn.send(Stdin.with_data(command_id, piece))  # type: ignore[arg-type]
                view = view[len(piece):]
                sent += len(piece)
                if progress is not None:
                    progress(sent, size)
        if not channel.finished:
            await conn.send(StdinEof(id=command_id))
    finally:
        if pending is not None:
            # Not cancelled: the thread would go on using fd, which the caller
            # closes next. Its result (or error) is of no interest now.
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()


# --- get -------------------------------------------------------------------------------


def _create_temp(target: bytes) -> tuple[int, bytes]:
    directory, name = os.path.split(target)
    for _ in range(8):
        temp = os.path.join(
            directory,
            b"." + name[:_TEMP_NAME_BUDGET] + b".rexec-" + secrets.token_hex(4).encode() + b".tmp",
        )
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), temp
        except FileExistsError:
            continue
    raise TransferError("local.failed", "could not create a temporary file (EEXIST)", remote=False)


def _write_chunks(fd: int, chunks: list[bytes], digest: Any) -> None:
    for chunk in chunks:
        digest.update(chunk)
    pending = [memoryview(c) for c in chunks]
    while pending:
        written = os.writev(fd, pending[:1024])
        while written:
            first = pending[0]
            if written >= len(first):
                written -= len(first)
                pending.pop(0)
            else:
                pending[0] = first[written:]
                written = 0


def _finish_file(fd: int, temp: bytes, target: bytes, mode: int) -> None:
    os.fchmod(fd, mode)  # exact, whatever the umask
    os.fsync(fd)
    os.replace(temp, target)
    try:
        dir_fd = os.open(os.path.dirname(target) or b".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def check_local_target(local_path: str | os.PathLike[str]) -> None:
    """Raise the ``TransferError`` a ``get`` into ``local_path`` would meet
    at once: its directory missing, or the path itself a directory."""
    target = os.fsencode(local_path)
    directory = os.path.dirname(target) or b"."
    if os.path.isdir(target) or os.path.basename(target) in (b"", b".", b".."):
        raise TransferError("local.is_directory", "the target is a directory", remote=False)
    if not os.path.isdir(directory):
        code = "local.not_found" if not os.path.exists(directory) else "local.failed"
        raise TransferError(code, "the target directory does not exist", remote=False)


async def get(
    conn: ClientConnection,
    remote_path: str,
    local_path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> TransferResult:
    """Copy the server's file ``remote_path`` to the local file ``local_path``
    (replaced atomically if it exists), with the server file's mode.

    Raises:
        TransferError: a local or remote failure, or ``file.digest_mismatch``
            when the bytes received are not those the server hashed.
        RexecConnectionError: the connection is or got lost.
    """
    started = time.monotonic()
    check_local_target(local_path)
    target = os.fsencode(local_path)
    command_id = conn.next_command_id()
    channel = _Channel(GET_HIGH_WATER)
    await conn.open_transfer(Get(id=command_id, path=remote_path), channel)
    fd, temp = -1, b""
    digest = hashlib.sha256()
    received = 0
    try:
        while channel.file is None and not channel.finished:
            await channel.wait()
        if channel.error is not None:
            raise channel.error
        assert channel.file is not None
        size, mode = channel.file.size, channel.file.mode
        try:
            fd, temp = _create_temp(target)
        except OSError as exc:
            raise local_error(exc) from None
        while True:
            chunks = channel.take()
            if chunks:
                try:
                    await _in_thread(_write_chunks, fd, chunks, digest)
                except OSError as exc:
                    raise local_error(exc) from None
                received += sum(len(c) for c in chunks)
                if progress is not None:
                    progress(received, size)
                continue
            if channel.finished:
                break
            await channel.wait()
        if channel.error is not None:
            raise channel.error
        assert channel.done is not None
        sha256 = digest.hexdigest()
        if received != channel.done.size or sha256 != channel.done.sha256:
            raise TransferError("file.digest_mismatch",
                                "the bytes received do not match the server's sha256",
                                remote=False)  # fmt: skip
        try:
            await _in_thread(_finish_file, fd, temp, target, mode)
        except OSError as exc:
            raise local_error(exc) from None
        temp = b""
    except BaseException:
        _cancel(conn, command_id, channel)
        raise
    finally:
        if fd >= 0:
            os.close(fd)
        if temp:
            try:
                os.unlink(temp)
            except OSError:
                pass
    return TransferResult(
        "get", os.fsdecode(local_path), remote_path, received, sha256, mode,
        time.monotonic() - started,
    )  # fmt: skip
