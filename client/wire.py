"""``Wire``: the frames of one authenticated connection, both ways.

There is one write path: every frame goes through the protocol's
``Connection.send`` (which checks it) and then the transport, so frames never
interleave. One reader task feeds received bytes to the protocol and hands
each frame to the handler of its command id (``CommandHandler``), pausing the
socket while a handler's reader is full; it answers ``ping`` with ``pong``.
An optional keepalive pings the server and declares it dead on silence. A
fatal ``error``, a protocol violation, EOF, a failed keepalive or ``close()``
end the wire, and every command still open ends with the first of these
reasons: nothing waits forever. ``ClientConnection`` (connection.py) builds
the commands on top.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl as ssl_module
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from rexec.protocol import (
    Connection,
    Done,
    Error,
    ErrorCode,
    Exit,
    Get,
    LocalProtocolError,
    Ping,
    Pong,
    Put,
    RemoteProtocolError,
    Run,
)

from ._handshake import READ_SIZE, fatal_error_frame
from .errors import CannotSend, ProtocolViolation, RexecConnectionError

if TYPE_CHECKING:
    from rexec.protocol import Message

log = logging.getLogger(__name__)

#: Seconds ``close()`` waits for the transport to finish closing.
_CLOSE_TIMEOUT = 2.0


class CommandHandler(Protocol):
    """What the wire feeds the frames of one command id to: a
    ``RemoteProcess`` for a ``run``, a transfer (``rexec_client.transfer``)
    for a ``put`` or ``get``."""

    def handle(self, message: object) -> None: ...

    def connection_lost(self, error: RexecConnectionError) -> None: ...

    @property
    def needs_room(self) -> bool: ...

    async def wait_for_room(self) -> None: ...


def describe_os_error(exc: OSError) -> str:
    """One line for a socket, name resolution or TLS failure, without
    Python's decorations."""
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return "no such host (the name does not resolve)"
        return f"cannot resolve the host name ({(exc.strerror or str(exc)).lower()})"
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message}"
    if isinstance(exc, ssl_module.SSLError):
        reason = exc.reason or str(exc)
        return f"TLS failed: {_TLS_REASONS.get(reason, reason)}"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, ConnectionResetError):
        # asyncio's own "Connection lost" (no errno): a write found the
        # transport already closed by the peer. Said as the reader says it, so
        # that one cause reads the same whichever side noticed first.
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


#: What the TLS failures a user meets most often mean, by OpenSSL's reason.
_TLS_REASONS = {
    "WRONG_VERSION_NUMBER": "the server does not speak TLS (WRONG_VERSION_NUMBER)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused our client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the CA of our client certificate",
}


class Wire:
    """The frames of one authenticated connection; ``peer`` names the server
    in every error. ``keepalive``: seconds between pings (None: no pings),
    ``keepalive_timeout``: how long a ping may go unanswered."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: Connection,
        *,
        peer: str,
        keepalive: float | None,
        keepalive_timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._protocol = protocol
        self.peer = peer
        self._handlers: dict[int, CommandHandler] = {}
        self._error: RexecConnectionError | None = None
        self._ended = asyncio.Event()
        self._reading_paused = False
        self._pong = asyncio.Event()
        self._pong_seq = -1
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"rexec-reader-{peer}")
        self._keepalive_task = (
            asyncio.create_task(self._keepalive(keepalive, keepalive_timeout))
            if keepalive
            else None
        )

    @property
    def is_closed(self) -> bool:
        return self._error is not None

    async def wait_ended(self) -> RexecConnectionError:
        """Wait until the connection has ended (lost, or closed by ``close()``)
        and return why: lets an idle client notice a dead server at once."""
        await self._ended.wait()
        assert self._error is not None
        return self._error

    async def open_command(self, message: Run | Put | Get, handler: CommandHandler) -> None:
        """Send the frame that opens a command (``run``, ``put``, ``get``) and
        route the frames of its id to ``handler`` until its terminal frame
        (``exit``, ``done`` or ``error``) or the end of the connection.

        Raises:
            RexecConnectionError, CannotSend: as ``send``; then nothing is routed.
        """
        command_id = message.id
        # Registered before sending: its first answer may arrive while
        # ``send`` waits for the transport.
        self._handlers[command_id] = handler
        try:
            await self.send(message)
        except BaseException:
            self._handlers.pop(command_id, None)
            raise

    # --- the write path --------------------------------------------------------

    def send_nowait(self, message: Message) -> None:
        """Check ``message`` against the protocol state and queue its bytes.

        Raises:
            RexecConnectionError: the connection is lost.
            CannotSend: the message is above the server's limits, or illegal
                now; nothing was sent.
        """
        if self._error is not None:
            raise self._error
        try:
            frame = self._protocol.send(message)
        except LocalProtocolError as exc:
            raise CannotSend(
                f"{self.peer}: cannot send {message.type}: {exc.message}", exc.code.value
            ) from None
        self._writer.write(frame)

    async def send(self, message: Message) -> None:
        """``send_nowait``, then wait until the transport can take more.

        The protocol state is updated before the first suspension, so a check
        made just before calling ``send`` still holds when the frame is sent.
        """
        self.send_nowait(message)
        try:
            await self._writer.drain()
        except OSError as exc:
            raise self._fail(self._lost(describe_os_error(exc))) from None

    # --- closing ---------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection. Commands still running end with
        ``connection_lost`` (and the server kills them)."""
        self._fail(RexecConnectionError(f"the connection to {self.peer} was closed by the client"))
        tasks = [t for t in (self._reader_task, self._keepalive_task) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self._writer.wait_closed()
        except (OSError, TimeoutError):
            self._writer.transport.abort()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _lost(self, why: str, code: str | None = None) -> RexecConnectionError:
        return RexecConnectionError(f"connection to {self.peer} lost: {why}", code)

    def _fail(self, error: RexecConnectionError) -> RexecConnectionError:
        """End the connection with ``error`` (the first reason wins): every
        open command ends with it, tasks stop, the transport closes."""
        if self._error is None:
            self._error = error
            self._ended.set()
            for handler in self._handlers.values():
                handler.connection_lost(error)
            self._handlers.clear()
            self._writer.close()
            for task in (self._reader_task, self._keepalive_task):
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
        return self._error

    # --- the reader --------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                self._protocol.receive_data(data)
                if not data:
                    raise self._lost("the server closed the connection")
                while (message := self._protocol.next_event()) is not None:
                    await self._dispatch(message)
        except RemoteProtocolError as exc:
            if exc.code is ErrorCode.FRAME_TRUNCATED:
                self._fail(self._lost("the server closed the connection inside a frame"))
            else:
                self._writer.write(fatal_error_frame(self._protocol, exc))
                self._fail(
                    ProtocolViolation(
                        f"connection to {self.peer} lost: the server broke the protocol "
                        f"({exc.code.value}: {exc.message})",
                        exc.code.value,
                    )
                )
        except RexecConnectionError as exc:
            self._fail(exc)
        except OSError as exc:
            self._fail(self._lost(describe_os_error(exc)))

    async def _dispatch(self, message: object) -> None:
        if isinstance(message, Ping):
            self.send_nowait(Pong(seq=message.seq))
            return
        if isinstance(message, Pong):
            self._pong_seq = message.seq
            self._pong.set()
            return
        if isinstance(message, Error) and message.fatal:
            raise self._lost(f"{message.message} ({message.code})", message.code)
        command_id: int | None = getattr(message, "id", None)
        if command_id is None:
            assert isinstance(message, Error)  # the protocol state allows nothing else
            # A non-fatal error about no command: nothing to end; tell the log.
            log.warning("rexec server %s reported %s: %s", self.peer, message.code, message.message)
            return
        handler = self._handlers[command_id]
        handler.handle(message)
        if isinstance(message, (Exit, Done, Error)):
            del self._handlers[command_id]
        elif handler.needs_room:
            # Stop reading the socket until the user reads this command's
            # output: TCP backpressure then reaches the server.
            self._reading_paused = True
            try:
                await handler.wait_for_room()
            finally:
                self._reading_paused = False

    # --- keepalive -----------------------------------------------------------------

    async def _keepalive(self, interval: float, timeout: float) -> None:
        seq = 0
        try:
            while True:
                await asyncio.sleep(interval)
                self._pong.clear()
                self.send_nowait(Ping(seq=seq))
                while self._pong_seq != seq:
                    try:
                        async with asyncio.timeout(timeout):
                            await self._pong.wait()
                    except TimeoutError:
                        # While the reader is paused for backpressure, the pong
                        # may well be waiting unread: only silence counts.
                        if not self._reading_paused:
                            self._fail(self._lost(f"no answer to keepalive within {timeout:g} s"))
                            return
                    self._pong.clear()
                seq += 1
        except RexecConnectionError:
            return
