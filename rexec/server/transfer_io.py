"""The file side of transfers: ``put`` writes a file atomically, ``get``
streams one out.

A ``PutTransfer`` or ``GetTransfer`` is driven like a ``CommandRunner`` by its
lifecycle in rexec/server/transfers.py (stdin, ``stdin_eof`` and cancel routed
to it, output paused when the client stops reading, cancelled on disconnect)
and reports through callbacks, exactly once through ``on_finish``.

Where the file I/O runs: on the loop's default executor (a thread), at most
one operation at a time per transfer, each bounded to one chunk (≤ 1 MiB,
the protocol's body cap), and the SHA-256 is computed in the same thread call
(hashlib releases the GIL for large buffers). Writes to the page cache are
usually quick, but not always: the kernel throttles a writer once too much
data is dirty, a cold read waits for the disk, and ``fsync`` of a large file
takes as long as the disk needs. On the loop any of these would stall every
other session of the server; in a thread they stall only this transfer.
Closing a descriptor and unlinking a temporary file stay on the loop: they
are short metadata calls, and cleanup must run even when the loop is tearing
the task down.

Speed: a get reads one chunk ahead (the next chunk is read and hashed in the
thread while the loop sends the current one); a put gives its client a window
of ``PUT_WINDOW`` bytes (the connection's ``stdin_window`` at the start, the
rest granted at once when the temporary file exists), and writes what has
arrived in batches of up to ``CHUNK_SIZE`` while more arrives.

Memory stays bounded: a put holds at most its window (credit is granted back
only once bytes are on disk, [stdin.credit.grant]); a get holds two chunks
(the one being sent and the one read ahead), and waits while the session's
transport is above its high-water mark.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import os
import secrets
import stat
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from rexec.protocol import ErrorCode, Get, Put

#: Bytes read from a file, or written to one, in one executor call: the
#: protocol's body cap, so that a get's chunk is one ``stdout`` frame.
CHUNK_SIZE = 1024 * 1024

#: A put's credit window in all: the most a client may have sent that is not
#: yet on disk, hence the most a put buffers. Above ``stdin_window`` (whose
#: 256 KiB keep a command's pipe busy), because a file write and its hash
#: take longer than a pipe write, and the window must cover them.
PUT_WINDOW = 4 * 1024 * 1024

#: How many bytes of the target's name the temporary file's name keeps, so
#: that ``.NAME.rexec-XXXXXXXX.tmp`` stays within NAME_MAX (255 bytes).
_TEMP_NAME_BUDGET = 200

_T = TypeVar("_T")


class TransferError(Exception):
    """A transfer failed; ``code`` is the command-scoped error for the wire.

    The message never quotes the client's path ([error.message.no_echo]).
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class TransferOutcome:
    """How a transfer ended: ``done`` when ``error`` is None."""

    error: TransferError | None = None
    size: int = 0  # bytes written (put) or sent (get)
    sha256: str = ""  # of those bytes


FinishCallback = Callable[[TransferOutcome], None]


def resolve_path(path: str) -> str:
    """The absolute path a client's ``path`` names: relative paths are relative
    to the home directory of the user the server runs as (the default ``cwd``
    of a command). No ``~`` expansion: a ``~`` is an ordinary character."""
    return os.path.join(os.path.expanduser("~"), path)


def _os_path(path: str) -> bytes:
    # Paths travel as JSON strings; on the server's disk they are their UTF-8
    # bytes, whatever the daemon's locale (protocol.md [transfer.path]).
    return path.encode("utf-8")


def file_error(exc: OSError, *, missing: str = "no such file or directory") -> TransferError:
    """The wire error for an OSError raised by a file operation."""
    name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return TransferError(ErrorCode.FILE_NOT_FOUND, f"{missing} ({name})")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return TransferError(ErrorCode.FILE_PERMISSION_DENIED, f"permission denied ({name})")
    if exc.errno == errno.EISDIR:
        return TransferError(ErrorCode.FILE_IS_DIRECTORY, f"is a directory ({name})")
    return TransferError(ErrorCode.FILE_FAILED, f"file operation failed ({name})")


class _Transfer:
    """What puts and gets share: the task that owns the file, its abort, and
    the executor calls."""

    def __init__(self, path: str, on_finish: FinishCallback) -> None:
        self.path = path
        self._loop = asyncio.get_running_loop()
        self._on_finish = on_finish
        self._digest = hashlib.sha256()
        self._bytes = 0
        self._abort: TransferError | None = None
        self._wake = asyncio.Event()  # set when there is something to do
        self._task: asyncio.Task[None] | None = None
        #: True while a thread may still be using our descriptor after our
        #: task was torn down: the descriptor is then left open, not reused.
        self._abandoned = False
        self.finished = False

    def start(self) -> None:
        self._task = self._loop.create_task(self._main())

    # --- the runner-like interface rexec/server/transfers.py drives ------------

    def cancel(self) -> None:
        """Abort the transfer (a ``cancel``, a disconnect, or shutdown); it
        ends with ``file.cancelled`` and leaves nothing behind."""
        self._fail(TransferError(ErrorCode.FILE_CANCELLED, "transfer cancelled"))

    def pause_output(self) -> None:
        """The client's side is full (only a get sends bulk data)."""

    def resume_output(self) -> None:
        pass

    def write_stdin(self, data: bytes) -> None:
        """Only a put takes stdin; the protocol core refuses it for a get."""

    def close_stdin(self) -> None:
        pass

    # --- internals ---------------------------------------------------------------

    def _fail(self, error: TransferError) -> None:
        if self._abort is None and not self.finished:
            self._abort = error
            self._wake.set()

    def _check_abort(self) -> None:
        if self._abort is not None:
            raise self._abort

    async def _io(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run one bounded file operation in a thread. The caller takes
        ownership of what it returns before checking for an abort."""
        try:
            return await self._loop.run_in_executor(None, function, *args)
        except asyncio.CancelledError:
            self._abandoned = True  # the thread may be mid-call on our descriptor
            raise
        except OSError as exc:
            raise file_error(exc) from None

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

    async def _main(self) -> None:
        outcome = TransferOutcome()
        try:
            await self._transfer()
        except TransferError as exc:
            outcome.error = exc
        except Exception:  # noqa: BLE001 -- a bug: end this transfer, loudly in the log
            traceback.print_exc(file=sys.stderr)
            outcome.error = TransferError(ErrorCode.FILE_FAILED, "internal server error")
        finally:
            self._cleanup()
        self.finished = True
        outcome.size = self._bytes
        outcome.sha256 = self._digest.hexdigest()
        self._on_finish(outcome)

    async def _transfer(self) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        raise NotImplementedError


# --- put ---------------------------------------------------------------------------


def _create_temp(target: bytes) -> tuple[int, bytes]:
    """Open a new temporary file beside ``target`` (mode 0600, exclusive);
    returns its descriptor and path."""
    directory, name = os.path.split(target)
    if name in (b"", b".", b".."):
        raise TransferError(ErrorCode.FILE_IS_DIRECTORY, "the target is a directory")
    try:
        if stat.S_ISDIR(os.stat(target).st_mode):
            raise TransferError(ErrorCode.FILE_IS_DIRECTORY, "the target is a directory")
    except FileNotFoundError:
        pass  # the usual case: a new file (a missing directory is found below)
    except OSError as exc:
        raise file_error(exc, missing="target directory not found") from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    for _ in range(8):
        temp = os.path.join(
            directory,
            b"." + name[:_TEMP_NAME_BUDGET] + b".rexec-" + secrets.token_hex(4).encode() + b".tmp",
        )
        try:
            return os.open(temp, flags, 0o600), temp
        except FileExistsError:
            continue  # another transfer drew the same name: draw again
        except OSError as exc:
            raise file_error(exc, missing="target directory not found") from None
    raise TransferError(ErrorCode.FILE_FAILED, "could not create a temporary file (EEXIST)")


def _write_all(fd: int, chunks: list[bytes], digest: Any) -> None:
    """Write ``chunks`` in order (one ``writev`` as a rule) and hash them."""
    pending = [memoryview(chunk) for chunk in chunks]
    while pending:
        written = os.writev(fd, pending)
        while written:
            if written >= len(pending[0]):
                written -= len(pending.pop(0))
            else:
                pending[0] = pending[0][written:]
                written = 0
    for chunk in chunks:
        digest.update(chunk)


def _sync(fd: int, mode: int) -> None:
    os.fchmod(fd, mode)  # exact: fchmod ignores the umask
    os.fsync(fd)


def _rename_into_place(temp: bytes, target: bytes) -> None:
    os.replace(temp, target)
    # The rename itself is durable only once its directory is on disk.
    try:
        dir_fd = os.open(os.path.dirname(target), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems can't sync a directory; the file is in place
    finally:
        os.close(dir_fd)


class PutTransfer(_Transfer):
    """Receives a file into a temporary file and renames it into place.

    Args:
        put: the request.
        path: its resolved, absolute target path.
        on_stdin_credit: called with the bytes of credit to grant back.
        on_finish: called once, after the file is in place or everything
            written is removed.
    """

    def __init__(
        self,
        put: Put,
        path: str,
        *,
        stdin_window: int,
        on_stdin_credit: Callable[[int], None],
        on_finish: FinishCallback,
    ) -> None:
        super().__init__(path, on_finish)
        self._put = put
        self._stdin_window = stdin_window
        self._on_stdin_credit = on_stdin_credit
        self._received = 0
        # Received, not yet written; at most the window in all.
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0
        self._eof = False
        self._fd = -1
        self._temp: bytes | None = None

    def write_stdin(self, data: bytes) -> None:
        if self._abort is not None or self.finished:
            return
        self._received += len(data)
        if self._received > self._put.size:
            # Caught on arrival: never a byte past the declared size on disk.
            self._fail(TransferError(ErrorCode.FILE_SIZE_MISMATCH, "more bytes than declared"))
            return
        if data:
            self._backlog.append(data)
            self._backlog_bytes += len(data)
            self._wake.set()

    def close_stdin(self) -> None:
        self._eof = True
        self._wake.set()

    def input_ended(self) -> None:
        """The client half-closed the connection: if this put's ``stdin_eof``
        has not come, its data never will; end it as a cancel does."""
        if not self._eof:
            self._fail(
                TransferError(ErrorCode.FILE_CANCELLED, "the client's input ended before stdin_eof")
            )

    async def _transfer(self) -> None:
        target = _os_path(self.path)
        self._fd, self._temp = await self._io(_create_temp, target)
        self._check_abort()
        # The rest of the window, now that the bytes have somewhere to go
        # (never more than the declared size still needs).
        extra = min(PUT_WINDOW - self._stdin_window, self._put.size - self._stdin_window)
        if extra > 0:
            self._on_stdin_credit(extra)
        while True:
            self._check_abort()
            if self._backlog:
                batch = self._take_batch()
                nbytes = sum(len(chunk) for chunk in batch)
                await self._io(_write_all, self._fd, batch, self._digest)
                self._bytes += nbytes
                self._check_abort()
                self._on_stdin_credit(nbytes)
            elif self._eof:
                break
            else:
                self._wake.clear()
                await self._wake.wait()
        if self._bytes != self._put.size:
            raise TransferError(ErrorCode.FILE_SIZE_MISMATCH, "fewer bytes than declared")
        if self._digest.hexdigest() != self._put.sha256:
            raise TransferError(
                ErrorCode.FILE_DIGEST_MISMATCH, "the content's sha256 is not the declared one"
            )
        await self._io(_sync, self._fd, self._put.mode)
        fd, self._fd = self._fd, -1
        try:
            os.close(fd)
        except OSError as exc:  # a deferred write error (NFS): the content is not safe
            raise file_error(exc) from None
        self._check_abort()
        # Past this point the transfer can't be aborted: the rename is atomic,
        # and once it is done the file is complete under its final name.
        await self._io(_rename_into_place, self._temp, target)
        self._temp = None

    def _take_batch(self) -> list[bytes]:
        """The oldest backlog chunks, about ``CHUNK_SIZE`` bytes (at least
        one chunk), so that credit flows back while later bytes arrive."""
        batch: list[bytes] = []
        nbytes = 0
        while self._backlog and nbytes < CHUNK_SIZE:
            chunk = self._backlog.pop(0)
            batch.append(chunk)
            nbytes += len(chunk)
        self._backlog_bytes -= nbytes
        return batch

    def _cleanup(self) -> None:
        # Never a half file under the final name: until the rename, the
        # content only ever had the temporary name, removed here.
        if self._fd >= 0 and not self._abandoned:
            os.close(self._fd)
        self._fd = -1
        if self._temp is not None:
            try:
                os.unlink(self._temp)
            except OSError:
                pass
            self._temp = None


# --- get ---------------------------------------------------------------------------


def _open_source(source: bytes) -> tuple[int, int, int]:
    """Open a regular file for reading; returns its descriptor, size and mode."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
    # below); it changes nothing for a regular file.
    fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise TransferError(ErrorCode.FILE_IS_DIRECTORY, "the source is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise TransferError(ErrorCode.FILE_FAILED, "the source is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size, stat.S_IMODE(info.st_mode)


def _read_chunk(fd: int, size: int, digest: Any) -> bytes:
    data = os.read(fd, size)
    digest.update(data)
    return data


class GetTransfer(_Transfer):
    """Streams a file: ``file``, exactly its size in chunks, then ``done``.

    Args:
        get: the request.
        path: its resolved, absolute source path.
        on_file: called with the size and mode, before any data.
        on_data: called with each chunk, in order.
        on_finish: called once, after the last ``on_data``.
    """

    def __init__(
        self,
        get: Get,
        path: str,
        *,
        on_file: Callable[[int, int], None],
        on_data: Callable[[bytes], None],
        on_finish: FinishCallback,
    ) -> None:
        super().__init__(path, on_finish)
        self._on_file = on_file
        self._on_data = on_data
        self._paused = False
        self._fd = -1

    def pause_output(self) -> None:
        self._paused = True

    def resume_output(self) -> None:
        self._paused = False
        self._wake.set()

    async def _transfer(self) -> None:
        self._fd, size, mode = await self._io(_open_source, _os_path(self.path))
        self._check_abort()
        self._on_file(size, mode)
        offset = 0
        ahead: asyncio.Future[bytes] | None = None

        def read_ahead() -> asyncio.Future[bytes] | None:
            if offset >= size:
                return None
            return self._loop.run_in_executor(
                None, _read_chunk, self._fd, min(CHUNK_SIZE, size - offset), self._digest
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
                self._bytes += len(chunk)
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

    def _cleanup(self) -> None:
        if self._fd >= 0 and not self._abandoned:
            os.close(self._fd)
        self._fd = -1
