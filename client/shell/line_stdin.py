"""The standard input of the lines of a ``rexec shell`` session.

The remote shell's own stdin is its command stream, so a line reads from
another pipe: the stdin of a helper command that never reads it (``sleep``),
opened by the line as ``/proc/PID/fd/0``. What the user types while the line
runs is sent to that helper's stdin; Ctrl-D (the end of the local input)
closes it, and the line reads EOF.

On a terminal, Ctrl-C is read here too, as a key (``interrupt_key``): each
one counts, however many came in one write.

A helper nobody typed into serves the next line too. One that was typed into
(or closed) is ended after its line, and a new one takes its place, so that
input typed for one line, read or not, never reaches the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..connection import ClientConnection
from ..errors import RexecConnectionError, RexecError
from ..process import RemoteProcess
from ..term.interrupt_key import interrupt_as_input
from ..term.local_io import read_chunks

#: The helper: waits, holding its stdin pipe, until ended (about 68 years).
HOLDER_ARGV = ("sleep", "2147483647")


class LineStdin:
    """Helpers whose stdin pipes the lines read, one at a time.

    Args:
        connection: where the helpers run (the session's connection).
    """

    def __init__(self, connection: ClientConnection, cwd: str | None) -> None:
        self._connection = connection
        self._cwd = cwd
        self._next: asyncio.Task[RemoteProcess] | None = None
        self._holder: RemoteProcess | None = None
        self._used = False

    def prepare(self) -> None:
        """Start the next helper now, so that it is there when a line needs it."""
        if self._holder is None and self._next is None:
            self._next = asyncio.create_task(
                self._connection.start(list(HOLDER_ARGV), stdin=True, cwd=self._cwd),
                name="rexec-line-stdin",
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

    async def forward(self, interrupt: Callable[[], None]) -> None:
        """Send local input to the current helper until the end of input
        (then close its stdin) or until cancelled; call ``interrupt`` for
        each Ctrl-C read from the terminal (the text typed before it on its
        line is dropped, as the terminal's Ctrl-C drops it). Without a helper
        the input is read for its Ctrl-C only."""
        holder = self._holder
        stdin = holder.stdin if holder is not None else None
        try:
            with interrupt_as_input(0) as key:
                async for chunk in read_chunks(0):
                    if key is not None and chunk.endswith(key):
                        interrupt()
                        continue
                    self._used = True
                    if stdin is not None:
                        stdin.write(chunk)
                        await stdin.drain()
            # The end of input (Ctrl-D): the terminal is back as it was, so
            # what is typed next waits there for the next prompt.
            self._used = True
            if stdin is not None:
                stdin.close()
        except (BrokenPipeError, RexecConnectionError):
            pass  # the helper or the connection ended; the line's status says how

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
