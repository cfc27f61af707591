"""The one error a transfer raises, and its construction from a local
file-system failure."""

from __future__ import annotations

import errno
import os

from ..errors import RexecError


class TransferError(RexecError):
    """A transfer failed; the connection carries on.

    Attributes:
        code: the server's error code (``file.not_found``,
            ``file.permission_denied``, ``file.is_directory``,
            ``file.digest_mismatch``, ``file.size_mismatch``, ``file.failed``,
            ``file.cancelled``, ``command.denied``, ``busy`` …) or, for this
            side's file system, ``local.not_found``,
            ``local.permission_denied``, ``local.is_directory``,
            ``local.changed`` (the file changed while it was sent),
            ``local.denied`` (a local path that leads out of the tree being
            copied by a link) or ``local.failed``; ``transfer.stalled``
            when the server sent nothing of it for the stall timeout.
        message: a short explanation, without the path.
        remote: True when the server reported it.
    """

    def __init__(self, code: str, message: str, *, remote: bool) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.remote = remote


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
