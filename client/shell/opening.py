"""Opening a remote shell of a ``rexec shell`` session: its commands started
on one connection, in the directory the session starts in (``--cwd``), and
nothing left running when one of them fails (``session`` has the shell)."""

from __future__ import annotations

from collections.abc import Callable

from ..connection import ClientConnection
from ..errors import RemoteCommandError
from ..refusal_kinds import CWD_HINT, outside_roots
from .session import RemoteShell, Writer
from .state import Snapshot


async def open_shell(
    connection: ClientConnection,
    out: Writer,
    err: Writer,
    *,
    snapshot: Snapshot | None,
    status: int,
    posix_sh: bool = False,
    on_snapshot: Callable[[Snapshot], None],
    on_warning: Callable[[str], None],
    cwd: str | None = None,
) -> RemoteShell:
    """A remote shell started on ``connection`` (see ``RemoteShell.start``),
    its commands in ``cwd`` (default: the server's, the account's home); a
    server or key with ``cwd_roots`` refuses them elsewhere (a refusal in the
    default directory says to name one). Nothing is left running if it fails."""
    try:
        control = await connection.start(["cat"], stdin=True, cwd=cwd)
    except RemoteCommandError as exc:
        if cwd is not None or not outside_roots(exc.code, exc.message):
            raise
        raise RemoteCommandError(exc.code, f"{exc.message}; {CWD_HINT}") from None
    shell = RemoteShell(connection, control, on_snapshot, on_warning, cwd)
    try:
        await shell.start(out, err, snapshot, status, posix_sh)
    except BaseException:
        await shell.close()
        raise
    return shell
