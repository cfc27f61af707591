"""Opening the files a batch writes its records to (``--joblog``,
``--results``, ``--rerun-file``), so that a symbolic link planted at their
path can't choose which file they truncate or append to."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO, Any


def open_record_file(path: str | Path, *, append: bool, binary: bool = False) -> IO[Any]:
    """Open ``path`` to write: created (mode 0666 less the umask) if new,
    truncated unless ``append``, as ``open(path, "a" | "w")``. A final
    symbolic link is followed only when it is this user's or root's: one
    another user owns was planted (in /tmp, say, where
    ``fs.protected_symlinks`` may be off) to make the batch truncate or
    append to a file of the victim's choosing.

    Raises:
        OSError: it can't be opened, or is another user's link (its
            ``filename`` is ``path``).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        if os.lstat(path).st_uid not in (os.geteuid(), 0):
            raise OSError(
                errno.EPERM, "it is a symbolic link another user owns", os.fspath(path)
            ) from None
        fd = os.open(path, flags, 0o666)  # ours (in a sticky directory nobody else may swap it)
    mode = ("a" if append else "w") + ("b" if binary else "")
    if binary:
        return open(fd, mode)
    return open(fd, mode, encoding="utf-8", newline="")
