"""One emulated rexec server: the protocol through ``rexec.protocol``'s
sans-I/O ``Connection`` (the same rules rexecd and the client follow), the
commands from ``fleet_commands`` (no processes).

``Endpoint`` is what the fleet serves on one address: its name, the key and
its behaviour (normal, dropping every connection, or slow to say hello).
``EndpointSession`` is one connection to it, an ``asyncio.Protocol``: bytes
in → ``Connection.receive_data`` → messages → actions; every frame out goes
through ``Connection.send`` and is written in one batch per event, so a
``true`` costs one write for its ``started``, ``exit`` and output.

What a session does, as rexecd does it: hello at once; mutual HMAC
authentication over the transcript the ``Connection`` recorded, bound to the
TLS channel under TLS (``rexec.protocol``'s ``Transcript``; a wrong key gets a
fatal ``auth.failed``); commands run
concurrently up to ``max_commands`` (beyond: ``busy``); ``timeout``,
``cancel`` and ``signal`` end a command as they end a real ``sleep``
(SIGTERM, reported ``timed_out``/``cancelled``), and so does output past
the run's ``output_limit`` (``output_capped``); stdin is read and thrown
away under credit; ``put``/``get`` are refused (``command.denied``); a
protocol violation gets its fatal error and the connection is closed.
Output is paused while the transport's buffer is above its high-water mark.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import secrets
import signal

from fleet_commands import Plan, Refusal, plan

from rexec import protocol
from rexec.binding import BindingUnavailable, connection_binding

#: Bytes of ``head -c`` output per frame.
_CHUNK = 256 * 1024
#: Signals whose default action does not end a process (a real ``sleep`` lives on).
_HARMLESS = {"SIGCONT", "SIGWINCH", "SIGSTOP", "SIGTSTP"}
#: Fake process ids, shared by all endpoints: unique within the emulator.
_pids = itertools.count(1000)


class Behaviour(enum.Enum):
    NORMAL = "normal"
    DROP = "drop"  # accepts, then drops every connection before hello
    SLOW = "slow"  # says hello only after ``slow_seconds``


@dataclasses.dataclass
class Counts:
    """What the fleet has served so far (``fleet.py`` prints them on SIGUSR1)."""

    connections: int = 0
    #: The most connections open at once (a client's fanout, seen from here).
    peak_open: int = 0
    authenticated: int = 0
    auth_failures: int = 0
    commands: int = 0
    #: Commands running now, and the most at once (a client's concurrency).
    running: int = 0
    peak_running: int = 0


@dataclasses.dataclass
class Stats:
    """Counters and the open sessions, shared by every endpoint of a fleet."""

    counts: Counts = dataclasses.field(default_factory=Counts)
    sessions: set[EndpointSession] = dataclasses.field(default_factory=set)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One emulated server."""

    name: str
    key: bytes
    stats: Stats
    behaviour: Behaviour = Behaviour.NORMAL
    slow_seconds: float = 0.0
    limits: protocol.Limits = dataclasses.field(default_factory=protocol.Limits)


@dataclasses.dataclass(eq=False)
class _Command:
    run: protocol.Run
    plan: Plan
    started_at: float
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdin_bytes: int = 0
    zeros_left: int = 0
    timers: list[asyncio.TimerHandle] = dataclasses.field(default_factory=list)


class EndpointSession(asyncio.Protocol):
    """One connection to an emulated server."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.conn = protocol.Connection(protocol.Role.SERVER, limits=endpoint.limits)
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._nonce = secrets.token_hex(protocol.NONCE_SIZE)
        self._binding = b""  # the connection's binding (rexec.binding), once connected
        self._commands: dict[int, _Command] = {}
        self._out: list[bytes] = []
        self._paused = False
        self._closed = False
        self._eof = False  # the client half-closed
        self._hello_timer: asyncio.TimerHandle | None = None

    # --- transport events --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.endpoint.stats.counts.connections += 1
        behaviour = self.endpoint.behaviour
        if behaviour is Behaviour.DROP:
            transport.abort()
            return
        stats = self.endpoint.stats
        stats.sessions.add(self)
        stats.counts.peak_open = max(stats.counts.peak_open, len(stats.sessions))
        try:
            self._binding = connection_binding(transport, server=True)
        except BindingUnavailable:
            self._fatal(protocol.ErrorCode.TLS_BINDING_UNAVAILABLE, "no TLS channel binding")
            return
        if behaviour is Behaviour.SLOW:
            self._hello_timer = self._loop.call_later(self.endpoint.slow_seconds, self._hello)
            return
        self._hello()

    def _hello(self) -> None:
        self._send(
            protocol.Hello(
                versions=list(protocol.SUPPORTED_VERSIONS),
                features=sorted(protocol.SUPPORTED_FEATURES),
                nonce=self._nonce,
                server=self.endpoint.name,
                limits=self.conn.announced_limits(),
            )
        )
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            self.conn.receive_data(data)
            while not self._closed and (message := self.conn.next_event()) is not None:
                self._handle(message)
        except protocol.RemoteProtocolError as exc:
            self._fatal(exc.code, exc.message)
        self._flush()

    def eof_received(self) -> bool:
        # A half-close between frames: commands go on, the connection closes
        # when they are done (protocol.md [close.client.eof]).
        try:
            self.conn.receive_data(b"")
        except protocol.RemoteProtocolError:
            self._abort()
            return False
        self._eof = True
        if not self._commands:
            self._close()
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.endpoint.stats.sessions.discard(self)
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        for command in self._commands.values():
            for timer in command.timers:
                timer.cancel()
        self.endpoint.stats.counts.running -= len(self._commands)
        self._commands.clear()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for command in list(self._commands.values()):
            if command.zeros_left:
                self._stream_zeros(command)
        self._flush()

    # --- messages ------------------------------------------------------------------

    def _handle(self, message: object) -> None:
        if isinstance(message, protocol.Auth):
            self._authenticate(message)
        elif isinstance(message, protocol.Run):
            self._start(message)
        elif isinstance(message, (protocol.Put, protocol.Get)):
            self._refuse(
                message.id, protocol.ErrorCode.COMMAND_DENIED, "the fleet emulator moves no files"
            )
        elif isinstance(message, protocol.Stdin):
            command = self._commands[message.id]
            command.stdin_bytes += message.data_size
            if message.data_size:
                self._send(protocol.StdinCredit(id=message.id, bytes=message.data_size))
        elif isinstance(message, protocol.Cancel):
            self._end(self._commands[message.id], signal.SIGTERM, cancelled=True)
        elif isinstance(message, protocol.Signal):
            if message.signal not in _HARMLESS:
                self._end(self._commands[message.id], signal.Signals[message.signal])
        elif isinstance(message, protocol.Ping):
            self._send(protocol.Pong(seq=message.seq))
        elif isinstance(message, protocol.Error) and message.fatal:
            self._close()
        # stdin_eof, resize, pong and non-fatal errors need nothing here

    def _authenticate(self, auth: protocol.Auth) -> None:
        key = self.endpoint.key
        transcript = self.conn.transcript(self._binding)
        if not protocol.macs_match(transcript.client_mac(key), auth.mac):
            self.endpoint.stats.counts.auth_failures += 1
            self._fatal(protocol.ErrorCode.AUTH_FAILED, "authentication failed")
            return
        self.endpoint.stats.counts.authenticated += 1
        self._send(protocol.AuthOk.with_mac(transcript.server_mac(key, auth.mac)))

    def _start(self, run: protocol.Run) -> None:
        if len(self._commands) >= self.endpoint.limits.max_commands:
            self._refuse(run.id, protocol.ErrorCode.BUSY, "too many running commands; retry later")
            return
        what = plan(run, self.endpoint.name)
        if isinstance(what, Refusal):
            self._refuse(run.id, what.code, what.message)
            return
        if what.drop:
            self._abort()
            return
        counts = self.endpoint.stats.counts
        counts.commands += 1
        counts.running += 1
        counts.peak_running = max(counts.peak_running, counts.running)
        command = _Command(run, what, self._loop.time(), zeros_left=what.zeros)
        self._commands[run.id] = command
        self._send(protocol.Started(id=run.id, pid=next(_pids)))
        if run.timeout is not None and (what.seconds > run.timeout or what.zeros):
            command.timers.append(self._loop.call_later(run.timeout, self._timed_out, command))
        if what.seconds:
            command.timers.append(self._loop.call_later(what.seconds, self._complete, command))
        elif what.zeros:
            self._stream_zeros(command)
        else:
            self._complete(command, flush=False)

    def _refuse(self, command_id: int, code: protocol.ErrorCode, message: str) -> None:
        self._send(protocol.Error(code=code.value, message=message, fatal=False, id=command_id))

    # --- ending commands -----------------------------------------------------------

    def _complete(self, command: _Command, *, flush: bool = True) -> None:
        """The command's normal end: its output, then its exit (unless the
        output reached its limit, which ended it)."""
        if self._output(command, protocol.Stdout, command.plan.stdout) and self._output(
            command, protocol.Stderr, command.plan.stderr
        ):
            self._exit(command, exit_code=command.plan.exit_code)
        if flush:
            self._flush()

    def _timed_out(self, command: _Command) -> None:
        self._end(command, signal.SIGTERM, timed_out=True)
        self._flush()

    def _end(
        self,
        command: _Command,
        sig: signal.Signals,
        *,
        timed_out: bool = False,
        cancelled: bool = False,
        output_capped: bool = False,
    ) -> None:
        """The command killed by ``sig`` (a timeout, a cancel, a signal, the
        output limit)."""
        if self.conn.is_active(command.run.id):
            self._exit(
                command,
                sig=sig,
                timed_out=timed_out,
                cancelled=cancelled,
                output_capped=output_capped,
            )

    def _exit(
        self,
        command: _Command,
        *,
        exit_code: int | None = None,
        sig: signal.Signals | None = None,
        timed_out: bool = False,
        cancelled: bool = False,
        output_capped: bool = False,
    ) -> None:
        for timer in command.timers:
            timer.cancel()
        del self._commands[command.run.id]
        self.endpoint.stats.counts.running -= 1
        self._send(
            protocol.Exit(
                id=command.run.id,
                exit_code=exit_code,
                signal=int(sig) if sig is not None else None,
                signal_name=sig.name if sig is not None else None,
                timed_out=timed_out,
                cancelled=cancelled,
                output_capped=output_capped,
                duration=self._loop.time() - command.started_at,
                stdout_bytes=command.stdout_bytes,
                stderr_bytes=command.stderr_bytes,
                stdin_bytes=command.stdin_bytes,
            )
        )
        if self._eof and not self._commands:
            self._close()

    def _output(
        self, command: _Command, kind: type[protocol.Stdout | protocol.Stderr], data: bytes
    ) -> bool:
        """Send ``data`` on ``kind``'s stream; False when it reached the run's
        ``output_limit``, which ended the command as a timeout does
        (protocol.md [output.limit]: exactly the first N bytes, then
        ``output_capped``)."""
        limit = command.run.output_limit
        if limit is not None:
            left = limit - command.stdout_bytes - command.stderr_bytes
            if len(data) > left:
                if left:
                    self._output(command, kind, data[:left])
                self._end(command, signal.SIGTERM, output_capped=True)
                return False
        if not data:
            return True
        if kind is protocol.Stdout:
            command.stdout_bytes += len(data)
        else:
            command.stderr_bytes += len(data)
        self._send(kind.with_data(command.run.id, data))
        return True

    def _stream_zeros(self, command: _Command) -> None:
        while command.zeros_left and not self._paused:
            size = min(_CHUNK, command.zeros_left)
            command.zeros_left -= size
            if not self._output(command, protocol.Stdout, bytes(size)):
                command.zeros_left = 0
            self._flush()
        if not command.zeros_left and command.run.id in self._commands:
            self._complete(command, flush=False)

    # --- the write path ----------------------------------------------------------------

    def _send(self, message: object) -> None:
        if not self._closed:
            self._out.append(self.conn.send(message))  # type: ignore[arg-type]

    def _flush(self) -> None:
        if self._out and not self._closed and self.transport is not None:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def _fatal(self, code: protocol.ErrorCode, message: str) -> None:
        try:
            self._send(protocol.Error(code=code.value, message=message, fatal=True))
        except protocol.ProtocolError:
            pass  # the state allows no more frames: just close
        self._close()

    def _close(self) -> None:
        self._flush()
        self._closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now (the fleet is stopping)."""
        self._abort()

    def _abort(self) -> None:
        self._closed = True
        self._out.clear()
        if self.transport is not None:
            self.transport.abort()
