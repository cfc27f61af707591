"""File transfer over a ``ClientConnection``: ``put`` a local file on the
server, ``get`` a server file here (protocol.md 5.6).

    >>> async with await rexec_client.connect(host, port, key) as conn:
    ...     result = await put(conn, "data.bin", "/srv/data.bin")
    ...     result = await get(conn, "/var/log/syslog", "syslog")
    >>> result.size, result.sha256, result.mb_per_s

Both stream with bounded memory, whatever the file's size, and check size
and SHA-256 end to end; see ``put`` and ``get`` for how. Failures raise
``TransferError`` (``code`` is the server's, such as ``file.not_found``, or a
``local.*`` one for this side's file system, or ``file.digest_mismatch``);
a lost connection raises ``RexecConnectionError``.
"""

from .channel import DEFAULT_STALL_TIMEOUT, Progress, TransferResult, remote_path
from .errors import TransferError, local_error
from .get import check_local_target, get
from .put import put
from .tree import make_directory, make_link

__all__ = [
    "DEFAULT_STALL_TIMEOUT",
    "Progress",
    "TransferError",
    "TransferResult",
    "check_local_target",
    "get",
    "local_error",
    "make_directory",
    "make_link",
    "put",
    "remote_path",
]
