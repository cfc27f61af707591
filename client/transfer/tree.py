"""The local side of a ``get -r``: directories and symbolic links made
beneath the target tree's top, each relative to the descriptor of a
directory verified to be inside it (``rexec.files.open_parent``), so that a
link already in the local tree that leads out of it is never written
through: ``local.denied``, and nothing is made."""

from __future__ import annotations

import os
import stat

from rexec.files import OutsideRoots, Roots, open_parent

from .errors import TransferError, local_error


def make_directory(top: str, path: str) -> None:
    """Make the directory ``path`` (``top`` itself, or beneath it); one
    already there is kept.

    Raises:
        TransferError: ``local.denied`` when the way to it leaves ``top`` by
            a link; ``local.*`` for a file system failure.
    """
    dir_fd: int | None = None
    name: str | bytes = top
    if os.path.abspath(path) != os.path.abspath(top):
        dir_fd, name = _parent(top, path)
    try:
        try:
            os.mkdir(name, dir_fd=dir_fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd).st_mode):
                raise TransferError("local.failed", "not a directory", remote=False) from None
    except OSError as exc:
        raise local_error(exc) from None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def make_link(top: str, target: str, path: str) -> None:
    """Make ``path`` (beneath ``top``) a symbolic link to ``target``, in
    place of a file or link there; the link's text is not followed."""
    dir_fd, name = _parent(top, path)
    try:
        try:
            if not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        os.symlink(target, name, dir_fd=dir_fd)
    except OSError as exc:
        raise local_error(exc) from None
    finally:
        os.close(dir_fd)


def _parent(top: str, path: str) -> tuple[int, bytes]:
    try:
        return open_parent(path, Roots([top]), base=os.getcwd())
    except OutsideRoots:
        raise TransferError("local.denied", "the path leads out of the target tree by a link",
                            remote=False) from None  # fmt: skip
    except OSError as exc:
        raise local_error(exc) from None
