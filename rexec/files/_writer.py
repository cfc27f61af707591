"""The one atomic file writer: a new file takes its final name complete, or
never.

``AtomicFile`` writes into a temporary file created beside the target,
relative to the target directory's descriptor (from ``open_parent``), hashes
the bytes as they are written, and on ``commit`` sets the mode (and the
modification time), flushes the file to stable storage, renames it over the
target relative to the same descriptor and flushes the directory. Nothing is
ever looked up by path again, so a directory swapped for a link meanwhile
changes nothing. ``discard`` removes the temporary file; a resumable file
(``resume_key``) is ``keep``-able instead, to be continued later.

Names: ``.NAME.rexec-XXXXXXXX.tmp`` (8 random hex digits, created
exclusively, mode 0600) and, for a resumable file, ``.NAME.rexec-KEY.part``
(KEY derived from the name and the caller's key). NAME is cut to 200 bytes so
that the whole stays within NAME_MAX.

Every method blocks on the file system: call them from a worker thread.
hashlib releases the GIL while it hashes a large buffer, so hashing in that
thread does not hold up the event loop either.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Sequence
from typing import Protocol

#: The most pieces one ``writev`` takes (``IOV_MAX``; 1024 on Linux).
IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16
#: Bytes of the target's name kept in a temporary name (NAME_MAX is 255).
NAME_BUDGET = 200
TEMP_MARK = b".rexec-"
TEMP_SUFFIX = b".tmp"
PARTIAL_SUFFIX = b".part"
#: Bytes read per call when hashing what a resumed partial file holds.
_READ_CHUNK = 1024 * 1024
_NEW_TEMP_TRIES = 8


class Registry(Protocol):
    """Where a writer records its temporary file while it exists, so that a
    process that dies mid-write can have it removed at its next start
    (``TempRecords``)."""

    def add(self, dir_fd: int, name: bytes, fd: int) -> None: ...

    def remove(self, fd: int) -> None: ...


def temp_name(name: bytes) -> bytes:
    """A fresh ``.NAME.rexec-XXXXXXXX.tmp`` for the target ``name``."""
    return b"." + name[:NAME_BUDGET] + TEMP_MARK + secrets.token_hex(4).encode() + TEMP_SUFFIX


def partial_name(name: bytes, resume_key: str) -> bytes:
    """The ``.NAME.rexec-KEY.part`` a resumable write of ``name`` under
    ``resume_key`` uses: the same for the same two, different otherwise
    (the full name is hashed in, so cut names do not collide)."""
    key = hashlib.sha256(name + b"\0" + resume_key.encode()).hexdigest()[:32]
    return b"." + name[:NAME_BUDGET] + TEMP_MARK + key.encode() + PARTIAL_SUFFIX


def write_all(fd: int, chunks: Sequence[bytes | bytearray | memoryview]) -> int:
    """Write every byte of ``chunks``, in order, and return how many.

    One ``writev`` takes at most ``IOV_MAX`` pieces, and may write fewer
    bytes than asked: both are handled, whatever the number and size of the
    chunks.
    """
    pending = [memoryview(chunk).cast("B") for chunk in chunks if len(chunk)]
    total = sum(len(piece) for piece in pending)
    start = 0  # pending[:start] are written
    while start < len(pending):
        written = os.writev(fd, pending[start : start + IOV_MAX])
        while written:
            piece = pending[start]
            if written >= len(piece):
                written -= len(piece)
                start += 1
            else:
                pending[start] = piece[written:]
                written = 0
    return total


class DigestWriter:
    """Writes chunks to a descriptor in order, hashing them as they go.

    Attributes:
        size: the bytes the file holds (for a resumed file, those it held
            already plus those written since).
        digest: the SHA-256 of those bytes, so far.
        resumed: bytes that were already there when it was opened.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.size = 0
        self.resumed = 0
        self.digest = hashlib.sha256()

    def write(self, chunks: Sequence[bytes | bytearray | memoryview]) -> int:
        """Append ``chunks`` (any number, any sizes) and hash them; returns
        the bytes written."""
        written = write_all(self._fd, chunks)
        for chunk in chunks:
            self.digest.update(chunk)
        self.size += written
        return written

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


class AtomicFile(DigestWriter):
    """A file under construction; see the module docstring.

    Use ``create``. It owns ``dir_fd`` from then on (closed by ``commit``,
    ``discard`` or ``keep``).
    """

    def __init__(
        self, dir_fd: int, name: bytes, temp: bytes, fd: int, registry: Registry | None
    ) -> None:
        super().__init__(fd)
        self._dir_fd = dir_fd
        self.name = name
        self.temp = temp
        self._registry = registry

    @classmethod
    def create(
        cls,
        dir_fd: int,
        name: bytes,
        *,
        resume_key: str | None = None,
        registry: Registry | None = None,
    ) -> AtomicFile:
        """Start a new file that will be ``name`` in the directory ``dir_fd``.

        With ``resume_key``, continue the partial file an earlier writer of
        the same name and key kept (its bytes are read back and hashed), or
        start one. ``dir_fd`` is the writer's from the call on, and closed
        by it, on a failure here too.

        Raises:
            OSError: the temporary file can't be created (``EACCES``,
                ``ENOSPC`` …).
        """
        try:
            if resume_key is not None:
                temp = partial_name(name, resume_key)
                fd = _open_partial(dir_fd, temp)
            else:
                fd, temp = _new_temp(dir_fd, name)
        except BaseException:
            os.close(dir_fd)
            raise
        writer = cls(dir_fd, name, temp, fd, None)
        try:
            if registry is not None:
                registry.add(dir_fd, temp, fd)
                writer._registry = registry
            if resume_key is not None:
                writer._read_back()
        except BaseException:
            writer.discard()
            raise
        return writer

    def _read_back(self) -> None:
        buffer = bytearray(_READ_CHUNK)
        view = memoryview(buffer)
        while n := os.readv(self._fd, [view]):
            self.digest.update(view[:n])
            self.size += n
        self.resumed = self.size

    def commit(self, mode: int, mtime: float | None = None, *, replace: bool = True) -> None:
        """Give the file exactly ``mode`` (the umask does not apply) and,
        when given, ``mtime`` (seconds), flush it, and rename it over the
        target in one atomic step; then flush the directory, so that the
        rename survives a crash too. The writer is closed afterwards. With
        ``replace`` false it is linked into place instead, which never
        overwrites a file, not even one another writer put there meanwhile.

        Raises:
            OSError: a failure before the rename leaves the target as it
                was (call ``discard``); ``EISDIR`` when a directory took the
                target's name meanwhile; ``FileExistsError`` when the target
                exists and ``replace`` is false.
        """
        fd = self._fd
        os.fchmod(fd, mode)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
        os.fsync(fd)
        self._fd = -1
        if self._registry is not None:
            self._registry.remove(fd)
        try:
            os.close(fd)  # a deferred write error (NFS) shows here: the content is not safe
        except OSError:
            self._fd = -2  # closed all the same; discard must not close it again
            raise
        if replace:
            os.replace(self.temp, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        else:
            os.link(
                self.temp,
                self.name,
                src_dir_fd=self._dir_fd,
                dst_dir_fd=self._dir_fd,
                follow_symlinks=False,
            )
            _unlink(self._dir_fd, self.temp)
        self.temp = b""
        _sync_directory(self._dir_fd)
        self._close_directory()

    def discard(self) -> None:
        """Remove the temporary file and close everything. Idempotent; never
        raises."""
        if self._fd >= 0:
            if self._registry is not None:
                self._registry.remove(self._fd)
            os.close(self._fd)
        self._fd = -1
        if self.temp:
            _unlink(self._dir_fd, self.temp)
            self.temp = b""
        self._close_directory()

    def keep(self) -> None:
        """Close a resumable file, leaving its partial content (and its
        record) for a later ``create`` with the same key."""
        assert self.temp.endswith(PARTIAL_SUFFIX), "only a resumable file is kept"
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self.temp = b""
        self._close_directory()

    def _close_directory(self) -> None:
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1


def _open_partial(dir_fd: int, temp: bytes) -> int:
    """Open (or create) a resumable partial file. Only a plain file of this
    user's with no other name is continued; anything else under that name (a
    symbolic or hard link, a FIFO, someone else's file) is unlinked, never
    followed or written, and a new empty partial file takes its place."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # ELOOP: a symbolic link, under O_NOFOLLOW
            raise
    else:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_nlink == 1:
            os.set_blocking(fd, True)
            return fd
        os.close(fd)
    os.unlink(temp, dir_fd=dir_fd)  # the name only: another name keeps a hard-linked file
    return os.open(temp, flags | os.O_EXCL, 0o600, dir_fd=dir_fd)


def _new_temp(dir_fd: int, name: bytes) -> tuple[int, bytes]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(_NEW_TEMP_TRIES):
        temp = temp_name(name)
        try:
            return os.open(temp, flags, 0o600, dir_fd=dir_fd), temp
        except FileExistsError:
            continue  # another writer drew the same name: draw again
    raise OSError(errno.EEXIST, "no free temporary name")


def _unlink(dir_fd: int, name: bytes) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass  # already gone, or the directory went: nothing more to do


def _sync_directory(dir_fd: int) -> None:
    # dir_fd is O_PATH (search permission suffices to reach it); fsync needs
    # a readable descriptor. Best effort: some file systems can't sync a
    # directory, and the file is in place either way.
    try:
        fd = os.open(b".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
