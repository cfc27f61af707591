"""The standard input of the lines of a ``rexec shell`` session.

The remote shell's own stdin is its command stream, so a line reads from
another pipe: the stdin of a helper command that never reads it (``sleep``),
opened by the line as ``/proc/PID/fd/0``. What the user types while the line
runs is sent to that helper's stdin; Ctrl-D (the end of the local input)
closes it, and the line reads EOF.

A helper nobody typed into serves the next line too. One that was typed into
(or closed) is ended after its line, and a new one takes its place, so that
input typed for one line, read or not, never reaches the next one.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..connection import ClientConnection
from ..errors import RexecError
from ..process import RemoteProcess
from ..term.relay import forward_input

#: The helper: waits, holding its stdin pipe, until ended (about 68 years).
HOLDER_ARGV = ("sleep", "2147483647")


class LineStdin:
    """Helpers whose stdin pipes the lines read, one at a time.

    Args:
        connection: where the helpers run (the session's connection).
    """

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._next: asyncio.Task[RemoteProcess] | None = None
        self._holder: RemoteProcess | None = None
        self._used = False

    def prepare(self) -> None:
        """Start the next helper now, so that it is there when a line needs it."""
        if self._holder is None and self._next is None:
            self._next = asyncio.create_task(
                self._connection.start(list(HOLDER_ARGV), stdin=True), name="rexec-line-stdin"
            )

    async def path(self) -> str:
        """The path a line opens as its stdin, ``/dev/null`` if no helper can
        be had (the server refused it: the line then reads nothing).

        Raises:
            RexecConnectionError: the connection is lost.
        """
        self.prepare()
        if self._holder is None:
            assert self._next is not None
            try:
                self._holder = await self._next
            except RexecError:
                if self._connection.is_closed:
                    raise
                return "/dev/null"
            finally:
                self._next = None
            self._used = False
        if self._holder.status is not None:  # it died: replace it
            self._holder = None
            return await self.path()
        return f"/proc/{self._holder.pid}/fd/0"

    async def forward(self) -> None:
        """Send local input to the current helper until the end of input
        (then close its stdin) or until cancelled."""
        holder = self._holder
        if holder is None or holder.stdin is None:
            return
        await forward_input(holder.stdin, on_input=self._mark_used)

    def _mark_used(self) -> None:
        self._used = True

    def after_line(self) -> None:
        """The line has ended: end the helper if it was typed into, and start
        its successor."""
        if self._holder is not None and self._used:
            self._holder.cancel()
            self._holder = None
        self.prepare()

    async def close(self) -> None:
        """End the helpers (one still starting, once it has started)."""
        holder, starting = self._holder, self._next
        self._holder = self._next = None
        if holder is not None:
            holder.cancel()
        if starting is not None:
            with contextlib.suppress(RexecError):
                (await starting).cancel()
