"""A session's one way out: message → ``Connection.send`` → transport.

Everything the server sends on a connection passes through one ``Writer``,
which also keeps the backpressure: when the transport's buffer passes
``WRITE_HIGH_WATER`` the session pauses its requests' output (the transport
says so through ``pause_writing``), and above ``WRITE_HARD_LIMIT`` it stops
reading the socket too. That is the whole of the server's flow control, and
it keeps memory bounded whatever the output size.
"""

from __future__ import annotations

import asyncio

from rexec.eventloop import bulk_moved
from rexec.log import log_exception
from rexec.protocol import (
    Connection,
    ConnectionState,
    Done,
    Error,
    ErrorCode,
    Exit,
    LocalProtocolError,
    Message,
    Pong,
    Started,
    StdinCredit,
)
from rexec.server.server import FATAL_CLOSE_TIMEOUT

#: The frames that end a request: nothing of it may follow one.
Terminal = Exit | Done | Error

#: Transport buffer above which requests stop reading output.
WRITE_HIGH_WATER = 1024 * 1024
#: Transport buffer above which the session stops reading its socket too. Below
#: it, frames that answer the client (errors for refused runs, started) may
#: still queue, so a client that has stopped reading can still cancel; above
#: it, a client flooding requests without reading answers is simply not read.
WRITE_HARD_LIMIT = 4 * WRITE_HIGH_WATER
#: How long a command's ``started`` may wait to travel with its first output or
#: its exit, in one write: a command that ends at once then costs its client
#: one wake-up, not two. Short, so a quiet command's client still learns its
#: pid at once for any human purpose.
STARTED_DELAY = 0.005
#: How long a small stdin grant may wait to travel with its command's next
#: frame (a keystroke's grant with its echo: one frame for the client to wake
#: up to, not two). "Small" is below an eighth of the window summed, so the
#: client keeps at least 7/8 of its credit meanwhile and never waits on it.
CREDIT_DELAY = 0.005
#: A body at least this large is written apart from its header rather than
#: copied into one buffer with it (``write`` sends at once when nothing is
#: queued: two system calls cost less than the copy of a megabyte).
_BODY_APART = 64 * 1024


class Writer:
    """Encodes and writes the messages of one connection.

    Once ``closing`` is set, every message is dropped: the client is gone or
    going, and what its commands still print goes nowhere.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        #: True while the transport is above its high-water mark.
        self.paused = False
        self.closing = False
        self._read_paused = False
        self._pending_started: dict[int, tuple[Started, asyncio.TimerHandle]] = {}
        # Answers held back while the client isn't reading, coalesced so that
        # they can't grow without bound: the latest ping, credit per command.
        self._held_pong: int | None = None
        self._held_credit: dict[int, int] = {}
        # Small grants waiting (at most CREDIT_DELAY) for their command's next frame.
        self._lazy_credit: dict[int, tuple[int, asyncio.TimerHandle]] = {}

    def attach(self, transport: asyncio.Transport) -> None:
        """Write to ``transport``. (Reading a whole frame per receive instead
        of asyncio's 256 KiB saved nothing measurable on a put and raised the
        peak RSS near 64 MiB: not done.)"""
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    # --- what goes out ------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Write ``message`` now (after its command's deferred ``started``)."""
        if self.closing or self.transport is None:
            return
        try:
            command_id = getattr(message, "id", -1)
            pending = self._pending_started.pop(command_id, None) if self._pending_started else None
            lazy = self._lazy_credit.pop(command_id, None) if self._lazy_credit else None
            bulk_moved(message.data_size)  # what the heap has held (rexec/eventloop.py)
            if pending is None and lazy is None and message.data_size >= _BODY_APART:
                self.transport.write(self.conn.send_header(message))
                self.transport.write(message.data)  # type: ignore[union-attr]
            elif pending is None and lazy is None:
                self.transport.write(self.conn.send(message))
            else:  # deferred frames of the command travel in the same write
                frames = []
                if pending is not None:  # the command's ``started`` goes first
                    started, timer = pending
                    timer.cancel()
                    frames.append(self.conn.send(started))
                frames.append(self.conn.send(message))
                if lazy is not None:  # its credit after (none after a terminal frame)
                    nbytes, timer = lazy
                    timer.cancel()
                    if not isinstance(message, Terminal):
                        frames.append(self.conn.send(StdinCredit(id=command_id, bytes=nbytes)))
                self.transport.write(b"".join(frames))
            if not self._read_paused and self.transport.get_write_buffer_size() > WRITE_HARD_LIMIT:
                self._read_paused = True
                self.transport.pause_reading()
        except LocalProtocolError:
            log_exception("a frame could not be sent (a bug)")
            if (
                isinstance(message, Error) and message.fatal
            ) or self.conn.state is ConnectionState.CLOSED:
                # Not even a fatal error can be said here: drop the connection
                # (calling fatal() again would recurse).
                self.abort()
            else:
                self.fatal(ErrorCode.INTERNAL, "internal server error")

    def send_started(self, started: Started) -> None:
        """Send a command's ``started`` with whatever it sends next, or after
        ``STARTED_DELAY`` if it sends nothing before."""
        timer = asyncio.get_running_loop().call_later(
            STARTED_DELAY, self._flush_started, started.id
        )
        self._pending_started[started.id] = (started, timer)

    def end(self, terminal: Terminal) -> None:
        """Send a request's terminal frame; nothing of it may follow."""
        assert terminal.id is not None
        self._held_credit.pop(terminal.id, None)
        self.send(terminal)

    def grant_credit(self, command_id: int, nbytes: int) -> None:
        lazy = self._lazy_credit.pop(command_id, None)
        if lazy is not None:
            nbytes += lazy[0]
        if self.paused or nbytes * 8 >= self.conn.limits.stdin_window:
            if lazy is not None:
                lazy[1].cancel()
            self._send_credit(command_id, nbytes)
        elif lazy is not None:  # summed, on the first grant's timer
            self._lazy_credit[command_id] = (nbytes, lazy[1])
        else:
            timer = asyncio.get_running_loop().call_later(
                CREDIT_DELAY, self._flush_credit, command_id
            )
            self._lazy_credit[command_id] = (nbytes, timer)

    def pong(self, seq: int) -> None:
        if self.paused:
            self._held_pong = seq
        else:
            self.send(Pong(seq=seq))

    def _flush_started(self, command_id: int) -> None:
        entry = self._pending_started.pop(command_id, None)
        if entry is not None:
            self.send(entry[0])

    def _flush_credit(self, command_id: int) -> None:
        entry = self._lazy_credit.pop(command_id, None)
        if entry is not None:
            self._send_credit(command_id, entry[0])

    def _send_credit(self, command_id: int, nbytes: int) -> None:
        # Withholding credit from a client that isn't reading is also the
        # natural backpressure on its stdin.
        if self.paused:
            self._held_credit[command_id] = self._held_credit.get(command_id, 0) + nbytes
        else:
            self.send(StdinCredit(id=command_id, bytes=nbytes))

    # --- the transport's buffer ---------------------------------------------------

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """Below the high-water mark again: send what was held, read again."""
        self.paused = False
        if self._held_pong is not None:
            self.send(Pong(seq=self._held_pong))
            self._held_pong = None
        for command_id, nbytes in self._held_credit.items():
            self.send(StdinCredit(id=command_id, bytes=nbytes))
        self._held_credit.clear()
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    # --- closing ---------------------------------------------------------------------

    def fatal(self, code: ErrorCode, message: str) -> None:
        """Send a fatal error, then close; drop the socket if the frame can't
        leave within ``FATAL_CLOSE_TIMEOUT`` (a peer that does not read)."""
        if self.closing or self.transport is None:
            return
        self.send(Error(code=code.value, message=message, fatal=True))
        self.close()

    def close(self) -> None:
        """Close once what is buffered has left, or drop it after ``FATAL_CLOSE_TIMEOUT``."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        transport = self.transport
        transport.close()
        asyncio.get_running_loop().call_later(FATAL_CLOSE_TIMEOUT, transport.abort)

    def abort(self) -> None:
        """Drop the connection now, unsent bytes and all."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def lost(self) -> None:
        """The connection is gone: nothing more is sent."""
        self.closing = True
        for _, timer in (*self._pending_started.values(), *self._lazy_credit.values()):
            timer.cancel()
        self._pending_started.clear()
        self._lazy_credit.clear()
