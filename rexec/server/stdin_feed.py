"""A command's stdin: the client's bytes written to its pipe (or pty) as it
accepts them, and the credit they free granted back (rexec/server/runner.py
owns one per command with a stdin)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

#: Bytes written to the command's stdin at once.
WRITE_SIZE = 1024 * 1024


class StdinFeed:
    """Writes queued stdin to the non-blocking ``fd`` from the event loop.

    Args:
        fd: the write end (closed by ``finish``); on a pty, its end of input
            is a ^D, not a close.
        credit_batch: grants are batched to this many bytes, except that an
            empty buffer always settles the debt.
        on_credit: called with bytes of stdin credit to grant back, until the
            command has finished (``finished``).
    """

    def __init__(
        self,
        fd: int,
        *,
        pty: bool,
        credit_batch: int,
        on_credit: Callable[[int], None],
        finished: Callable[[], bool],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd: int | None = fd
        self._pty = pty
        self._credit_batch = credit_batch
        self._on_credit = on_credit
        self._finished = finished
        self._buffer = bytearray()
        self._eof = False
        self._broken = False
        self._credit_owed = 0

    def write(self, data: bytes) -> None:
        """Queue bytes; what can't be written (stdin closed) is granted back."""
        if self._broken or self._fd is None or self._finished():
            self._grant(len(data), discarded=True)
            return
        had_backlog = bool(self._buffer)
        self._buffer += data
        if not had_backlog:
            self._flush()

    def close(self) -> None:
        """End stdin once the queued bytes are written."""
        self._eof = True
        if not self._buffer:
            self.finish()

    def finish(self) -> None:
        """Close the write end now (a ^D first on a pty, unless broken)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        self._loop.remove_writer(fd)
        if self._pty and not self._broken:
            try:
                os.write(fd, b"\x04")  # a terminal's end of input is ^D, not a close
            except OSError:
                pass
        os.close(fd)

    def abandon(self) -> None:
        """The command is done: drop what is queued, close without a ^D."""
        self._buffer.clear()
        self._broken = True  # no ^D into a pty that is closing
        self.finish()

    def _flush(self) -> None:
        fd = self._fd
        assert fd is not None
        written = 0
        try:
            while self._buffer:
                n = os.write(fd, self._buffer[:WRITE_SIZE])
                del self._buffer[:n]
                written += n
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: the command closed its stdin; what's left is moot
            self._broken = True
            self._grant(written, discarded=False)
            self._grant(len(self._buffer), discarded=True)
            self._buffer.clear()
            self.finish()
            return
        self._grant(written, discarded=False)
        if self._buffer:
            self._loop.add_writer(fd, self._on_writable)
        elif self._eof:
            self.finish()

    def _on_writable(self) -> None:
        assert self._fd is not None
        self._loop.remove_writer(self._fd)
        self._flush()

    def _grant(self, nbytes: int, *, discarded: bool) -> None:
        # Grants are batched so a trickle of small writes doesn't cost a frame
        # each; an empty buffer always settles the debt so the client never
        # waits on credit the command has already consumed.
        self._credit_owed += nbytes
        if self._finished() or self._credit_owed == 0:
            return
        if discarded or self._credit_owed >= self._credit_batch or not self._buffer:
            owed, self._credit_owed = self._credit_owed, 0
            self._on_credit(owed)
