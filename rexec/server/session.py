"""One client connection: transport events → ``Connection`` → the owner of
each message.

The session is a router. Bytes from the socket go into its
``rexec.protocol.Connection``; each message that comes out goes to whoever
owns it: ``auth`` to the handshake (rexec/server/auth.py), ``run`` to
rexec/server/commands.py, ``put`` and ``get`` to rexec/server/transfers.py,
and stdin, signals, resizes and cancels to the running request they name.
Requests send their frames back through the session's one ``Writer``
(rexec/server/writer.py); the session's clocks are in
rexec/server/deadlines.py; what happens is told to the server's observers as
events (rexec/server/events.py).
Under TLS the session is admitted first and runs its TLS handshake then
(rexec/server/tls_upgrade.py).
"""

from __future__ import annotations

import asyncio
import signal
import time
import typing

from rexec.binding import BindingUnavailable, connection_binding
from rexec.eventloop import bulk_moved
from rexec.log import log, log_exception
from rexec.protocol import (
    Auth,
    Cancel,
    Connection,
    Error,
    ErrorCode,
    Get,
    Message,
    Ping,
    Put,
    RemoteProtocolError,
    Resize,
    Role,
    Run,
    Signal,
    Started,
    Stdin,
    StdinEof,
)
from rexec.server.auth import Handshake, HandshakeFailed
from rexec.server.commands import start_command
from rexec.server.deadlines import Deadline, Deadlines
from rexec.server.events import (
    AuthFailed,
    AuthSucceeded,
    ClientStalled,
    ConnectionAdmitted,
    ConnectionOpened,
    ConnectionRefused,
    DeadlineExpired,
    Disconnected,
    Origin,
    bad_frame_before_auth,
)
from rexec.server.policy import KeyRules
from rexec.server.requests import Request, refuse
from rexec.server.server import Server
from rexec.server.tls_upgrade import TlsUpgrade
from rexec.server.transfers import start_transfer
from rexec.server.writer import Terminal, Writer

#: What each deadline ends the connection with.
_EXPIRED = {
    Deadline.AUTH: (ErrorCode.AUTH_TIMEOUT, "authentication deadline expired"),
    Deadline.FRAME: (ErrorCode.FRAME_TIMEOUT, "frame not completed within the frame deadline"),
    Deadline.IDLE: (ErrorCode.IDLE_TIMEOUT, "connection idle for too long"),
}


class Session(asyncio.Protocol):
    """One client connection, from ``hello`` to close.

    It is the ``RequestHost`` of its requests (rexec/server/requests.py).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.origin = Origin(server.next_session_number(), "?")
        self.conn = Connection(Role.SERVER, limits=server.config.limits)
        self.writer = Writer(self.conn)
        self.deadlines = Deadlines(lambda: server.config.settings, self._expired, self._probe)
        self._handshake = Handshake(server.config.server_name)
        #: Running commands and transfers by id.
        self.requests: dict[int, Request] = {}
        self._key: KeyRules | None = None  # set once authenticated
        #: A failed authentication's answer, held back for the penalty.
        self._answer_later: asyncio.TimerHandle | None = None
        self._read_eof = False
        self._probe_seq = 0
        self._binding = b""  # what the macs bind to (rexec.binding), once greeted
        self._upgrade: TlsUpgrade | None = None  # under TLS, until the greeting
        self._tls = False
        self._lost = False

    # --- the transport's events -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport).
        transport = typing.cast(asyncio.Transport, transport)
        server = self.server
        peer = transport.get_extra_info("peername")
        self.origin = Origin(self.origin.session, f"{peer[0]}:{peer[1]}" if peer else "?")
        server.session_opened(self)
        server.emit(ConnectionOpened(self.origin))
        # Every connection is let in (rexec/server/admission.py); when the
        # table of those authenticating is full, an older one makes room.
        displaced = server.admission.admit(self, peer[0] if peer else "?")
        server.emit(ConnectionAdmitted(self.origin))
        if isinstance(displaced, Session):
            displaced.displace()
        context = server.config.ssl
        if context is None:
            self._greet(transport)
        else:
            self._upgrade = TlsUpgrade(
                transport, self, context, self._upgraded, lambda: self.connection_lost(None)
            )

    def _upgraded(self, tls: asyncio.Transport, early: bytes, early_eof: bool) -> None:
        self._upgrade = None
        self._tls = True
        self._greet(tls)
        if early:
            self.data_received(early)
        if early_eof:
            self.eof_received()

    def _greet(self, transport: asyncio.Transport) -> None:
        """Bind to the connection (its TLS session, or its two ends), start
        the authentication clock and send ``hello``."""
        self.writer.attach(transport)
        try:
            # protocol.md [auth.binding]: a TLS session we can't bind is refused.
            self._binding = connection_binding(transport, server=True)
        except BindingUnavailable as exc:
            log(f"refusing a TLS connection from {self.origin.peer}: {exc}", level="error")
            self.writer.fatal(ErrorCode.TLS_BINDING_UNAVAILABLE, "no TLS channel binding")
            return
        self.deadlines.start_auth()
        self.writer.send(self._handshake.hello(self.conn.announced_limits()))

    def data_received(self, data: bytes) -> None:
        if self._upgrade is not None:  # TLS is up and delivering; the greeting comes first
            self._upgrade.hold(data)
            return
        if not self._reading:
            return
        bulk_moved(len(data))  # what the heap has held (rexec/eventloop.py)
        try:
            self.conn.receive_data(data)
            while self._reading and (message := self.conn.next_event()) is not None:
                self._route(message)
            if not self._reading:
                return
            self.deadlines.watch_frame(self.conn.mid_frame)
            self._rearm_idle()
        except RemoteProtocolError as exc:
            if self._key is None:
                self.server.emit(bad_frame_before_auth(self.origin, exc.code, exc.message, data))
            self.writer.fatal(exc.code, exc.message)
        except Exception:  # a bug here must end this connection only, loudly in the log
            log_exception("a connection ended by a bug")
            self.writer.fatal(ErrorCode.INTERNAL, "internal server error")

    def eof_received(self) -> bool:
        # A half-close ends the client's input, not its interest in the output:
        # running requests go on, and the connection closes when they are done.
        # A FIN inside a frame, though, is a client that left. (Under TLS,
        # asyncio shuts the connection down after the client's close_notify
        # whatever this returns, and warns when it is true.)
        if self._upgrade is not None:
            self._upgrade.hold_eof()
            return False
        half_close = not self._tls
        if self._read_eof:
            return half_close  # seen again after reading was paused and resumed
        self._read_eof = True
        try:
            self.conn.receive_data(b"")
        except RemoteProtocolError:
            # The client left mid-frame: nothing more may be sent (the
            # connection's state is closed) until connection_lost runs.
            self.writer.abort()
            return False
        for request in list(self.requests.values()):
            request.input_ended()
        if not self.requests:
            self.writer.close()
        else:
            self.deadlines.start_probe()
        return half_close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._upgrade = None
        self.writer.lost()
        self.deadlines.stop_all()
        if self._answer_later is not None:
            self._answer_later.cancel()
        self.server.admission.closed(self)
        for request in list(self.requests.values()):
            request.cancel()  # it goes on until reaped; its end goes nowhere
            # Output paused for a client that wasn't reading must flow again
            # (into nothing): a paused command never sees its pipes close,
            # never finishes, and holds its slot, descriptors and zombie for ever.
            request.resume_output()
        self.server.session_closed(self)
        self.server.emit(Disconnected(self.origin, len(self.requests)))

    def pause_writing(self) -> None:
        self.writer.pause()
        for request in self.requests.values():
            request.pause_output()
        self.deadlines.start_stall()

    def resume_writing(self) -> None:
        self.deadlines.stop_stall()
        self.writer.resume()
        for request in list(self.requests.values()):
            request.resume_output()

    # --- routing --------------------------------------------------------------------------

    def _route(self, message: Message) -> None:
        # A frame for an id reaches here only while that request runs: the
        # protocol Connection drops frames for unknown and ended ids, and a
        # request leaves ``requests`` when it ends (so indexing is safe).
        match message:
            case Auth():
                self._authenticate(message)
            case Run() | Put() | Get():
                self._start(message)
            case Stdin(id=command_id):
                self.requests[command_id].write_stdin(message.data)
            case StdinEof(id=command_id):
                self.requests[command_id].close_stdin(message)
            case Signal(id=command_id, signal=name):
                self.requests[command_id].send_signal(signal.Signals[name])
            case Cancel(id=command_id):
                self.requests[command_id].cancel()
            case Resize(id=command_id, rows=rows, cols=cols):
                self.requests[command_id].resize(rows, cols)
            case Ping(seq=seq):
                self.writer.pong(seq)
            case Error(fatal=True):
                self.writer.close()
            # pong and non-fatal errors from a client need no action

    def _authenticate(self, auth: Auth) -> None:
        server = self.server
        transcript = self.conn.transcript(self._binding)
        try:
            key, answer = self._handshake.answer(auth, transcript, server.config.keys)
        except HandshakeFailed as failed:
            # The protocol core has refused an unoffered version already: a
            # failure here is always a key not proven, which counts.
            server.emit(AuthFailed(self.origin, "failed"))
            delay = server.admission.failed(self, time.monotonic())
            self._fail_handshake(failed.code, failed.message, delay)
            return
        self.deadlines.stop_auth()
        server.emit(AuthSucceeded(self.origin, key.name))
        refusal = server.admission.authenticated(self, key.name)
        if refusal is not None:  # the connection limits, checked for key holders only
            server.emit(ConnectionRefused(self.origin, refusal))
            self.writer.fatal(ErrorCode.BUSY, refusal)
            return
        self._key = key
        self.writer.send(answer)

    def _fail_handshake(self, code: ErrorCode, message: str, delay: float) -> None:
        """End a failed handshake, after ``delay`` seconds of penalty: the
        answer waits, the connection is read no more, and its slot is the
        first to go should a newer connection need one."""
        if delay <= 0 or self.writer.transport is None:
            self.writer.fatal(code, message)
            return
        self.deadlines.stop_auth()
        self.writer.transport.pause_reading()
        self._answer_later = asyncio.get_running_loop().call_later(
            delay, self.writer.fatal, code, message
        )

    @property
    def _reading(self) -> bool:
        """Whether frames from the client are still acted on."""
        return not self.writer.closing and self._answer_later is None

    def displace(self) -> None:
        """Close this connection, still authenticating, whose slot a newer
        connection took (rexec/server/admission.py)."""
        reason = "too many connections authenticating; retry later"
        self.server.emit(ConnectionRefused(self.origin, reason))
        if self._upgrade is not None:  # in its TLS handshake: nothing can be said to it
            self._upgrade.drop()
            return
        if self._answer_later is not None:
            self._answer_later.cancel()
        self.writer.fatal(ErrorCode.BUSY, reason)

    def _start(self, request: Run | Put | Get) -> None:
        busy = self.server.busy_refusal(len(self.requests), self.key.name)
        if busy is not None:
            refuse(self, request, *busy)
            return
        running = (
            start_command(request, self)
            if isinstance(request, Run)
            else start_transfer(request, self)
        )
        if running is not None:
            self.requests[request.id] = running

    # --- what the session's requests ask of it (RequestHost) ----------------------------

    @property
    def key(self) -> KeyRules:
        assert self._key is not None, "requests come only after authentication"
        return self._key

    @property
    def output_paused(self) -> bool:
        return self.writer.paused

    def send(self, message: Message) -> None:
        self.writer.send(message)

    def send_started(self, started: Started) -> None:
        self.writer.send_started(started)

    def grant_credit(self, command_id: int, nbytes: int) -> None:
        self.writer.grant_credit(command_id, nbytes)

    def end(self, terminal: Terminal) -> None:
        assert terminal.id is not None
        self.requests.pop(terminal.id, None)
        self.writer.end(terminal)
        if self._read_eof and not self.requests:
            self.writer.close()
        self._rearm_idle()

    # --- what the server asks of it (LiveSession) -----------------------------------------

    def cancel_requests(self) -> None:
        for request in list(self.requests.values()):
            request.cancel()

    def send_notice(self, code: ErrorCode, message: str) -> None:
        """Tell an authenticated client something about no command (a
        non-fatal ``error`` without ``id``); nothing ends."""
        if self._key is not None and not self.writer.closing:
            self.writer.send(Error(code=code.value, message=message, fatal=False))

    def fatal(self, code: ErrorCode, message: str) -> None:
        if self._upgrade is not None:  # in its TLS handshake: nothing can be said to it
            self._upgrade.drop()
        self.writer.fatal(code, message)

    # --- clocks ---------------------------------------------------------------------------

    def _rearm_idle(self) -> None:
        idle = self._key is not None and not self.requests and not self.writer.closing
        self.deadlines.rearm_idle(idle)

    def _expired(self, deadline: Deadline) -> None:
        server = self.server
        if deadline is Deadline.STALL:
            # The client has left output unread for the stall timeout: end its
            # requests (their ends can't reach it) and drop the connection.
            server.emit(ClientStalled(self.origin, len(self.requests)))
            self.cancel_requests()
            self.writer.abort()
            return
        if deadline is Deadline.AUTH:
            server.emit(AuthFailed(self.origin, "timeout"))
        elif deadline is Deadline.FRAME:
            server.emit(DeadlineExpired(self.origin, "frame_timeout"))
        else:
            server.emit(DeadlineExpired(self.origin, "idle_timeout"))
        self.writer.fatal(*_EXPIRED[deadline])

    def _probe(self) -> bool:
        """After a half-close: ping while requests run (see EOF_PROBE_INTERVAL)."""
        if self.writer.closing or not self.requests:
            return False
        self._probe_seq += 1
        self.writer.send(Ping(seq=self._probe_seq))
        return True
