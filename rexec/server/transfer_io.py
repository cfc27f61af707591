"""The file side of transfers: ``put`` writes a file atomically, ``get``
streams one out.

A ``PutTransfer`` or ``GetTransfer`` is driven like a ``CommandRunner`` by its
lifecycle in rexec/server/transfers.py (stdin, ``stdin_eof`` and cancel routed
to it, output paused when the client stops reading, cancelled on disconnect)
and reports through callbacks, exactly once through ``on_finish``.

Paths are resolved when the file is opened, beneath the roots the server and
the key allow (``rexec.files.open_path``/``open_parent``: every component
opened relative to a verified directory descriptor), and the put's temporary
file, its rename and the get's read all happen relative to descriptors from
that resolution, never to a path looked up again. A path that leads outside
the roots is ``command.denied``; a race with someone swapping directories
gives that or a file error, never a byte outside.

Where the file I/O runs: on the loop's default executor (a thread), at most
one operation at a time per transfer, each bounded to about one chunk
(``CHUNK_SIZE``), with the SHA-256 computed in the same thread call (hashlib
releases the GIL). Writes to the page cache are usually quick, but not
always: the kernel throttles a writer once too much data is dirty, a cold
read waits for the disk, and ``fsync`` takes as long as the disk needs; in a
thread they stall only this transfer.

Memory stays bounded by the credit: a put holds at most its window of
received bytes, with small frames coalesced on arrival into one buffer (a
put sent as 262,144 one-byte frames holds 1 byte per byte of credit, not the
~50 of a list of tiny objects), and the atomic writer hands any number of
pieces to ``writev`` in batches of at most ``IOV_MAX``; a get holds two
chunks (the one being sent and the one read ahead), and waits while the
session's transport is above its high-water mark.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import os
import stat
from collections.abc import Callable
from typing import Any, TypeVar

from rexec.files import AtomicFile, OutsideRoots, Roots, TempRecords, open_parent, open_path
from rexec.log import log_exception
from rexec.protocol import ErrorCode, Get, Put, StdinEof

#: Bytes read from a file, or written to one, in one executor call: the
#: protocol's body cap, so that a get's chunk is one ``stdout`` frame.
CHUNK_SIZE = 1024 * 1024

#: A put's credit window in all: the most a client may have sent that is not
#: yet on disk, hence the most a put buffers. Above ``stdin_window`` (whose
#: 256 KiB keep a command's pipe busy), because a file write and its hash
#: take longer than a pipe write, and the window must cover them.
PUT_WINDOW = 4 * 1024 * 1024

#: Frames smaller than this are copied into one growing buffer on arrival;
#: larger ones are kept as they came (copying them would cost more than the
#: list entry they take).
COALESCE_BELOW = 64 * 1024

#: Seconds a resumable put's partial file is kept for a resume: the start-up
#: sweep removes older ones.
PARTIAL_MAX_AGE = 7 * 24 * 3600

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
    size: int = 0  # bytes of the file written (put) or sent from (get)
    sha256: str = ""  # of the whole file


@dataclasses.dataclass(frozen=True)
class Place:
    """Where transfers may go: beneath ``roots``, relative paths from
    ``home``; ``records`` notes temporary files for the start-up sweep."""

    roots: Roots
    home: str
    records: TempRecords | None = None


FinishCallback = Callable[[TransferOutcome], None]


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


def _denied() -> TransferError:
    return TransferError(ErrorCode.COMMAND_DENIED, "the path leads outside the allowed roots")


class _Transfer:
    """What puts and gets share: the task that owns the file, its abort, and
    the executor calls."""

    def __init__(self, path: str, place: Place, on_finish: FinishCallback) -> None:
        self.path = path
        self.place = place
        self._loop = asyncio.get_running_loop()
        self._on_finish = on_finish
        self._abort: TransferError | None = None
        self._wake = asyncio.Event()  # set when there is something to do
        self._task: asyncio.Task[None] | None = None
        #: True while a thread may still be using our descriptor after our
        #: task was torn down: the descriptor is then left open, not reused.
        self._abandoned = False
        self.finished = False

    def start(self) -> None:
        self._task = self._loop.create_task(self._main())

    # --- the runner-like interface the session drives ---------------------------

    def cancel(self) -> None:
        """Abort the transfer (a ``cancel``, a disconnect, or shutdown); it
        ends with ``file.cancelled`` and leaves nothing behind (a resumable
        put keeps what it received)."""
        self._fail(TransferError(ErrorCode.FILE_CANCELLED, "transfer cancelled"))

    def pause_output(self) -> None:
        """The client's side is full (only a get sends bulk data)."""

    def resume_output(self) -> None:
        pass

    def write_stdin(self, data: bytes) -> None:
        """Only a put takes stdin; the protocol core refuses it for a get."""

    def close_stdin(self, eof: StdinEof | None = None) -> None:
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
        except OutsideRoots:
            raise _denied() from None
        except OSError as exc:
            raise file_error(exc) from None

    async def _main(self) -> None:
        outcome = TransferOutcome()
        try:
            outcome.size, outcome.sha256 = await self._transfer()
        except TransferError as exc:
            outcome.error = exc
        except Exception:  # noqa: BLE001 -- a bug: end this transfer, loudly in the log
            log_exception("a transfer ended by a bug")
            outcome.error = TransferError(ErrorCode.FILE_FAILED, "internal server error")
        finally:
            self._cleanup()
        self.finished = True
        self._on_finish(outcome)

    async def _transfer(self) -> tuple[int, str]:
        raise NotImplementedError

    def _cleanup(self) -> None:
        raise NotImplementedError


# --- put ---------------------------------------------------------------------------


def _open_target(path: str, place: Place, put: Put) -> AtomicFile:
    """The writer of a put's target: its directory resolved within the roots,
    the target itself not a directory (nor a link to one in the roots)."""
    dir_fd, name = open_parent(path, place.roots, base=place.home)
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        info = None  # the usual case: a new file
    except BaseException:
        os.close(dir_fd)
        raise
    if info is not None and _names_a_directory(info, dir_fd, name, place):
        os.close(dir_fd)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    writer = AtomicFile.create(dir_fd, name, resume_key=put.resume, registry=place.records)
    if put.size is not None and writer.size > put.size:
        # A partial file longer than the content can't be its start: anew.
        writer.discard()
        return _open_target(path, place, put)
    return writer


def _names_a_directory(info: os.stat_result, dir_fd: int, name: bytes, place: Place) -> bool:
    if stat.S_ISDIR(info.st_mode):
        return True
    if not stat.S_ISLNK(info.st_mode):
        return False
    # A link: a directory if it leads to one within the roots (put into it,
    # as a client does with a directory), else a name to replace.
    parent = os.readlink(f"/proc/self/fd/{dir_fd}")
    try:
        fd = open_path(os.path.join(parent, os.fsdecode(name)), place.roots, base="/",
                       flags=os.O_PATH | os.O_DIRECTORY)  # fmt: skip
    except (OSError, OutsideRoots):
        return False
    os.close(fd)
    return True


class _Backlog:
    """Received bytes not yet written, in arrival order: small frames
    coalesced into one buffer (1 byte of memory per byte received, whatever
    the framing), large ones kept as they came."""

    def __init__(self) -> None:
        self._chunks: list[bytes | bytearray] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        if len(data) >= COALESCE_BELOW:
            self._chunks.append(data)
        elif self._chunks and isinstance(self._chunks[-1], bytearray) and (
            len(self._chunks[-1]) < CHUNK_SIZE
        ):
            self._chunks[-1] += data
        else:
            self._chunks.append(bytearray(data))
        self.size += len(data)

    def take_all(self) -> list[bytes | bytearray]:
        batch, self._chunks, self.size = self._chunks, [], 0
        return batch

    def take(self) -> list[bytes | bytearray]:
        """The oldest chunks, about ``CHUNK_SIZE`` bytes (at least one), so
        that credit flows back while later bytes arrive."""
        count, nbytes = 0, 0
        while count < len(self._chunks) and nbytes < CHUNK_SIZE:
            nbytes += len(self._chunks[count])
            count += 1
        batch, self._chunks = self._chunks[:count], self._chunks[count:]
        self.size -= nbytes
        return batch


class PutTransfer(_Transfer):
    """Receives a file into a temporary file and renames it into place.

    Args:
        put: the request.
        path: its path as the client gave it.
        place: the roots and home it resolves in.
        on_file: called with the bytes already held and the mode, for a
            resumable put, before any credit.
        on_stdin_credit: called with the bytes of credit to grant back.
        on_finish: called once, after the file is in place or everything
            written is removed (or, resumable and interrupted, kept).
    """

    def __init__(
        self,
        put: Put,
        path: str,
        place: Place,
        *,
        stdin_window: int,
        on_file: Callable[[int, int], None],
        on_stdin_credit: Callable[[int], None],
        on_finish: FinishCallback,
    ) -> None:
        super().__init__(path, place, on_finish)
        self._put = put
        self._stdin_window = stdin_window
        self._on_file = on_file
        self._on_stdin_credit = on_stdin_credit
        self._received = 0  # stdin bytes received (after the resumed offset)
        self._offset = 0  # bytes a resumed partial file held
        self._backlog = _Backlog()
        self._eof: StdinEof | None = None
        self._writer: AtomicFile | None = None

    def write_stdin(self, data: bytes) -> None:
        if self._abort is not None or self.finished:
            return
        self._received += len(data)
        if self._put.size is not None and self._offset + self._received > self._put.size:
            # Caught on arrival: never a byte past the declared size on disk.
            self._fail(TransferError(ErrorCode.FILE_SIZE_MISMATCH, "more bytes than declared"))
            return
        if data:
            self._backlog.add(data)
            self._wake.set()

    def close_stdin(self, eof: StdinEof | None = None) -> None:
        self._eof = eof or StdinEof(id=self._put.id)
        self._wake.set()

    def input_ended(self) -> None:
        """The client half-closed the connection: if this put's ``stdin_eof``
        has not come, its data never will; end it as a cancel does."""
        if self._eof is None:
            self._fail(
                TransferError(ErrorCode.FILE_CANCELLED, "the client's input ended before stdin_eof")
            )

    async def _transfer(self) -> tuple[int, str]:
        put = self._put
        self._writer = writer = await self._io(_open_target, self.path, self.place, put)
        self._offset = writer.resumed
        self._check_abort()
        if put.resume is not None:
            self._on_file(writer.size, put.mode)
        self._grant_window()
        try:
            await self._receive(writer)
        except TransferError as exc:
            if put.resume is not None and exc.code is ErrorCode.FILE_CANCELLED:
                # Interrupted: what arrived is kept for the next put to continue.
                self._writer = None
                await self._io(_keep, writer, self._backlog.take_all())
            raise
        assert self._eof is not None
        size = put.size if put.size is not None else self._eof.size
        sha256 = put.sha256 if put.sha256 is not None else self._eof.sha256
        if writer.size != size:
            raise TransferError(ErrorCode.FILE_SIZE_MISMATCH, "not the declared number of bytes")
        if writer.sha256 != sha256:
            raise TransferError(
                ErrorCode.FILE_DIGEST_MISMATCH, "the content's sha256 is not the declared one"
            )
        self._check_abort()
        # Past this point the transfer can't be aborted: the rename is atomic,
        # and once it is done the file is complete under its final name.
        self._writer = None
        try:
            await self._io(writer.commit, put.mode, put.mtime)
        except BaseException:
            self._writer = writer
            raise
        return writer.size, writer.sha256

    def _grant_window(self) -> None:
        """Credit up to ``PUT_WINDOW`` in all, now that the bytes have
        somewhere to go (never more than the declared size still needs). A
        resumable put starts from none; another, from ``stdin_window``."""
        granted = 0 if self._put.resume is not None else self._stdin_window
        want = PUT_WINDOW
        if self._put.size is not None:
            want = min(want, self._put.size - self._offset)
        if want > granted:
            self._on_stdin_credit(want - granted)

    async def _receive(self, writer: AtomicFile) -> None:
        """Write what arrives until ``stdin_eof`` (or an abort)."""
        while True:
            self._check_abort()
            if self._backlog.size:
                batch = self._backlog.take()
                nbytes = await self._io(writer.write, batch)
                self._check_abort()
                self._on_stdin_credit(nbytes)
            elif self._eof is not None:
                return
            else:
                self._wake.clear()
                await self._wake.wait()

    def _cleanup(self) -> None:
        # Never a half file under the final name: until the rename, the
        # content only ever had the temporary name, removed here. A writer a
        # thread may still be using is left (its record lets the next start
        # remove it).
        if self._writer is not None and not self._abandoned:
            self._writer.discard()
        self._writer = None


def _keep(writer: AtomicFile, rest: list[bytes | bytearray]) -> None:
    """Keep a resumable put's partial file, with what arrived last."""
    try:
        writer.write(rest)
    except OSError:
        pass  # what is on disk is kept; the next put resumes from there
    finally:
        writer.keep()


# --- get ---------------------------------------------------------------------------


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


class GetTransfer(_Transfer):
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
