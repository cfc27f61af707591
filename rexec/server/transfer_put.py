"""A put: the file written atomically beneath the roots, from the client's
stdin frames within a credit window (``PUT_WINDOW``), kept as a partial file
for a resume when the put is resumable (rexec/server/transfer_io.py says how
the file I/O runs and how memory stays bounded).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from rexec.files import AtomicFile, open_parent
from rexec.protocol import ErrorCode, Put, StdinEof
from rexec.server.transfer_io import (
    CHUNK_SIZE,
    FileTransfer,
    FinishCallback,
    Place,
    TransferError,
)

#: A put's credit window in all: the most a client may have sent that is not
#: yet on disk, hence the most a put buffers. Above ``stdin_window`` (whose
#: 256 KiB keep a command's pipe busy), because a file write and its hash
#: take longer than a pipe write, and the window must cover them.
PUT_WINDOW = 4 * 1024 * 1024

#: Frames smaller than this are copied into one growing buffer on arrival;
#: larger ones are kept as they came (copying them would cost more than the
#: list entry they take).
COALESCE_BELOW = 64 * 1024


def _open_target(path: str, place: Place, put: Put) -> AtomicFile:
    """The writer of a put's target: its directory resolved within the roots,
    the target itself not a directory (nor a link to one in the roots)."""
    try:
        dir_fd, name = open_parent(path, place.roots, base=place.home)
    except NotADirectoryError:
        if os.path.basename(path) not in ("", ".", ".."):
            raise  # a missing directory on the way: file.not_found
        # "file/": the path names a directory, and that is a file.
        raise TransferError(ErrorCode.FILE_FAILED, "not a directory (ENOTDIR)") from None
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        info = None  # the usual case: a new file
    except BaseException:
        os.close(dir_fd)
        raise
    if info is not None and _names_a_directory(info, dir_fd, name):
        os.close(dir_fd)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    try:
        writer = AtomicFile.create(dir_fd, name, resume_key=put.resume, registry=place.records)
    except OSError as exc:
        # The target may well exist (/proc/version): what failed is the
        # temporary file beside it, which "no such file" would hide.
        raise _temp_error(exc) from None
    if put.size is not None and writer.size > put.size:
        # A partial file longer than the content can't be its start: anew.
        writer.discard()
        return _open_target(path, place, put)
    return writer


def _temp_error(exc: OSError) -> TransferError:
    """The wire error for a temporary file that can't be made beside the
    target: permission as such, anything else ``file.failed`` (never
    ``file.not_found``: the directory was found)."""
    name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
    reason = f"cannot create a temporary file beside it: {os.strerror(exc.errno or 0).lower()}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return TransferError(ErrorCode.FILE_PERMISSION_DENIED, f"{reason} ({name})")
    return TransferError(ErrorCode.FILE_FAILED, f"{reason} ({name})")


def _names_a_directory(info: os.stat_result, dir_fd: int, name: bytes) -> bool:
    """Whether the target is a directory, or a link to one wherever it leads
    (protocol.md 5.6): a link is never replaced by a put. Where a link to a
    directory leads is checked against the roots when a file is put into it."""
    if stat.S_ISDIR(info.st_mode):
        return True
    if not stat.S_ISLNK(info.st_mode):
        return False
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False  # dangling, or a loop: a name to replace


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
        elif (
            self._chunks
            and isinstance(self._chunks[-1], bytearray)
            and (len(self._chunks[-1]) < CHUNK_SIZE)
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


class PutTransfer(FileTransfer):
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
