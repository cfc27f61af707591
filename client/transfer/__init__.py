"""File transfer over a rexec connection: ``put`` and ``get``, streamed and
checked end to end (protocol.md section 5.6)."""

from .api import (
    Progress,
    TransferError,
    TransferResult,
    check_local_target,
    get,
    local_error,
    put,
    remote_path,
)

__all__ = [
    "Progress",
    "TransferError",
    "TransferResult",
    "check_local_target",
    "get",
    "local_error",
    "put",
    "remote_path",
]
