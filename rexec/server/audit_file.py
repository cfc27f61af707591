"""Opening the audit log's file: at start, for a FIFO once it has a reader,
and again on SIGHUP after logrotate moved it (``reopened``). Every opening
makes the same checks, so that a rotation can't swap in a file someone else
could read or rewrite."""

from __future__ import annotations

import errno
import os
import stat

from rexec.keyfile import OPEN_DIRECTORY, directory_open_to_others, trusted_owner
from rexec.log import log

#: Why records can't be written to a FIFO nobody has opened to read.
NO_READER = "no reader on its FIFO"


def open_log(path: str) -> int | None:
    """Open the log to append (created 0600) without waiting: None for a
    FIFO that has no reader yet (ENXIO); the descriptor then blocks, as
    the writer thread's writes may.

    Raises:
        OSError: the file can't be opened, is a symbolic link another
            user owns (it would choose where the trail goes), or is a
            file another user owns or others may write (they could read
            or rewrite the trail, or, a FIFO, read or stall it).
            ``/dev/stderr`` and ``/proc/self/fd/N`` are links of root's and
            this user's.
    """
    _check_place(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = _open_through_trusted_link(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO without a reader: its owner counts already
            _check_file(os.stat(path))
            return None
        raise
    try:
        _check_file(os.fstat(fd))
    except OSError:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return fd


def check_log(path: str) -> None:
    """Raise the ``OSError`` that ``open_log(path)`` would, by the same
    checks, without creating, opening or changing anything (``rexecd
    --check-config``): a FIFO's reader must not see an end of file, and a
    check leaves no empty log behind. A missing file needs a directory to be
    made in, which this user may write.
    """
    _check_place(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        directory = os.path.dirname(os.path.realpath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)) from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES)) from None
        return
    _check_file(info)


def _check_place(path: str) -> None:
    """A symbolic link another user owns would choose where the trail goes;
    a directory above it that others may write in would let them remove or
    replace the trail (as for the key file, rexec/keyfile.py)."""
    step = directory_open_to_others(path)
    if step is not None:
        raise OSError(errno.EPERM, f"the directory {step} {OPEN_DIRECTORY}")
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(link.st_mode) and not trusted_owner(link.st_uid):
        raise OSError(errno.EPERM, "it is a symbolic link another user owns")


def _open_through_trusted_link(path: str, flags: int) -> int:
    """``os.open(path, flags)``, following a symbolic link only if it is
    ours or root's, as it is at the moment of opening: a link another user
    put there after ``_check_place`` looked (the directory may be sticky and
    world-writable, as /tmp) is refused, never followed. A trusted link can't
    be swapped after it was looked at: only its owner may remove it there."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    link = os.lstat(path)
    if not trusted_owner(link.st_uid):
        raise OSError(errno.EPERM, "it is a symbolic link another user owns")
    return os.open(path, flags, 0o600)


def _check_file(info: os.stat_result) -> None:
    """A file another user owns (a FIFO of theirs would read or stall the
    trail), or a regular file not ours or that others may write: they could
    read or rewrite the trail. Root's and ours may be anything else (a
    terminal, /dev/null, a FIFO or socket a service manager made)."""
    if not trusted_owner(info.st_uid) or (
        stat.S_ISREG(info.st_mode)
        and (info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    ):
        raise OSError(errno.EPERM, "another user owns it, or group or others may write it")


def reopened(path: str, current: int) -> int | None:
    """A new descriptor for ``path`` when it no longer names the regular file
    open as ``current`` (moved away, or replaced: logrotate's ``create``);
    None when there is nothing to do (the same file, or ``current`` is not a
    regular file: a FIFO, a terminal) or when the new file can't be used
    (``open_log``'s checks), which is then said on stderr in one line: the
    caller keeps writing to ``current``."""
    try:
        info = os.fstat(current)
        if not stat.S_ISREG(info.st_mode):
            return None
        there = os.stat(path)  # a link (of ours, or root's) stands for its file
        if (there.st_dev, there.st_ino) == (info.st_dev, info.st_ino):
            return None
    except OSError:
        pass  # moved away (then it is created), or open_log says why not
    try:
        fd = open_log(path)
        if fd is None:
            raise OSError(errno.ENXIO, NO_READER)
    except OSError as exc:
        log(
            f"cannot reopen audit log {path}: {exc.strerror or exc}; "
            "still writing to the file it had open",
            level="error",
        )
        return None
    return fd
