"""A remote command's standard input, as an asyncio-style writer.

Bytes written are sent in ``stdin`` frames no larger than the server's body
limit and never beyond the command's stdin credit (protocol.md 5.3): when the
credit is spent, sending waits for the server's ``stdin_credit`` frames.
``write`` never blocks: bytes that can go at once (nothing queued before them,
within the credit and one frame) are sent from ``write`` itself, as a keystroke
is; the rest are queued for one pump task per writer, which sends them as
credit allows.
"""

from __future__ import annotations

import asyncio

from rexec.protocol import Stdin, StdinEof

from .errors import RexecConnectionError
from .link import CommandLink


class StdinWriter:
    """The standard input of one remote command.

    Like ``asyncio.StreamWriter``: ``write`` buffers, ``drain`` waits until
    what was written has been sent, ``close`` ends the input (``stdin_eof``,
    after every byte written before it). Once the command has ended, ``write``
    and an unfinished ``drain`` raise ``BrokenPipeError``, as a pipe to an
    exited process does; after a lost connection they raise its
    ``RexecConnectionError``.
    """

    def __init__(self, connection: CommandLink, command_id: int) -> None:
        self._connection = connection
        self._id = command_id
        self._buffer = bytearray()
        self._closing = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()  # wakes the pump: data, close, credit, end
        self._progress = asyncio.Event()  # wakes drain: bytes sent, or failure
        self._pump_task: asyncio.Task[None] | None = None
        self._written = 0
        #: Bytes handed to the connection so far.
        self.sent = 0

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (without waiting)."""
        if self._error is not None:
            raise self._error
        if self._closing:
            raise ValueError("write to a closed stdin")
        if not data:
            return
        self._written += len(data)
        if self._send_at_once(data):
            return
        self._buffer += data
        self._kick()

    async def drain(self) -> None:
        """Wait until every byte written so far has been sent."""
        target = self._written
        while self.sent < target:
            if self._error is not None:
                raise self._error
            self._progress.clear()
            await self._progress.wait()

    def close(self) -> None:
        """End the input: the command reads EOF after the bytes written."""
        if not self._closing:
            self._closing = True
            self._kick()

    @property
    def unsent(self) -> int:
        """Bytes written and not yet sent (waiting for credit)."""
        return self._written - self.sent

    def is_closing(self) -> bool:
        return self._closing

    async def wait_closed(self) -> None:
        """Wait until the end of input has been sent (or can no longer be)."""
        if self._pump_task is not None:
            await asyncio.shield(self._pump_task)

    # --- called by the process ---------------------------------------------

    def credit_granted(self) -> None:
        if self._buffer or self._closing:  # only a pump with bytes or an end to send waits
            self._changed.set()

    def command_ended(self, error: BaseException) -> None:
        """The command ended (``BrokenPipeError``) or the connection was lost:
        drop unsent bytes and wake every waiter with ``error``."""
        if self._error is None:
            self._error = error
        self._changed.set()
        self._progress.set()

    # --- internals -------------------------------------------------------------

    def _send_at_once(self, data: bytes) -> bool:
        """Send ``data`` in one frame now if nothing written before it is
        still queued and the credit and the body limit allow; say whether it
        was (or was dropped by a lost connection, as the pump would drop it).
        Saves the pump's wake-up per keystroke; the credit bounds what the
        connection's buffer can hold of it, as the pump's wait does."""
        if self._buffer or len(data) > min(
            self._connection.stdin_credit(self._id), self._connection.max_body
        ):
            return False
        try:
            self._connection.send_nowait(Stdin.with_data(self._id, bytes(data)))
        except RexecConnectionError as exc:
            self.command_ended(exc)
            return True
        self.sent += len(data)
        self._progress.set()
        return True

    def _kick(self) -> None:
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump(), name=f"rexec-stdin-{self._id}")
        self._changed.set()

    async def _pump(self) -> None:
        # Each check of credit and the ``send`` after it happen without a
        # suspension in between (``send`` hands the frame to the protocol
        # state before its first await), so the command can't end between them.
        try:
            while self._error is None:
                credit = self._connection.stdin_credit(self._id)
                if self._buffer and credit:
                    size = min(len(self._buffer), credit, self._connection.max_body)
                    chunk = bytes(self._buffer[:size])
                    del self._buffer[:size]
                    await self._connection.send(Stdin.with_data(self._id, chunk))
                    self.sent += size
                    self._progress.set()
                    continue
                if not self._buffer and self._closing:
                    await self._connection.send(StdinEof(id=self._id))
                    return
                self._changed.clear()
                await self._changed.wait()
        except RexecConnectionError as exc:
            self.command_ended(exc)
        finally:
            self._buffer.clear()
            self._progress.set()
