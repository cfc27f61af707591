"""Opening the files a batch keeps its records in (``--joblog``, ``--results``,
``--rerun-file``), so that another user can't choose what they read or write:
neither through a symbolic link planted at their path nor through a file of
theirs created there first (in /tmp, say, where ``fs.protected_symlinks`` and
``fs.protected_regular`` may be off). A joblog decides which jobs ``--resume``
skips: one another user wrote would choose them."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO, Any

from rexec.keyfile import trusted_owner


def open_record_file(path: str | Path, *, append: bool, binary: bool = False) -> IO[Any]:
    """Open ``path`` to write: created (mode 0666 less the umask) if new,
    truncated unless ``append``, as ``open(path, "a" | "w")``.

    Raises:
        OSError: it can't be opened, or it (or a final symbolic link to it)
            is another user's (its ``filename`` is ``path``).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    fd = _open_ours(path, flags)
    mode = ("a" if append else "w") + ("b" if binary else "")
    if binary:
        return open(fd, mode)
    return open(fd, mode, encoding="utf-8", newline="")


def read_record_file(path: str | Path) -> IO[str]:
    """Open ``path`` to read (``--resume``'s joblog), with the checks of
    ``open_record_file``.

    Raises:
        OSError: as ``open_record_file``; FileNotFoundError when missing.
    """
    return open(_open_ours(path, os.O_RDONLY | os.O_CLOEXEC), encoding="utf-8", newline="")


def _open_ours(path: str | Path, flags: int) -> int:
    """``os.open(path, flags)``, refusing another user's final link or file.
    A link of this user's or root's is followed, as ``> FILE`` does (in a
    sticky directory nobody else may swap it)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        # ELOOP: a final link; EACCES: a sticky directory's protected link.
        if exc.errno not in (errno.ELOOP, errno.EACCES) or not os.path.islink(path):
            raise
        if not trusted_owner(os.lstat(path).st_uid):
            raise OSError(
                errno.EPERM, "it is a symbolic link another user owns", os.fspath(path)
            ) from None
        fd = os.open(path, flags, 0o666)
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and not trusted_owner(info.st_uid):
        os.close(fd)
        raise OSError(errno.EPERM, "another user owns it", os.fspath(path))
    return fd
