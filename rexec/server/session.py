"""The asyncio shell of the server: one ``Session`` per TCP connection.

Bytes from the socket go into the session's ``rexec.protocol.Connection``;
each message that comes out is acted on at once (auth, spawn through a
``CommandRunner``, stdin, signals). Output from runners goes back through
``Connection.send`` to the transport. When the transport's buffer passes its
high-water mark, every runner of the session stops reading its pipes until it
drains: that is the whole of the server's backpressure, and it keeps memory
bounded whatever the output size.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
import sys
import time
import traceback
from typing import Any

from rexec.protocol import (
    SUPPORTED_VERSIONS,
    Auth,
    AuthOk,
    Cancel,
    Connection,
    ConnectionState,
    Done,
    Error,
    ErrorCode,
    Exit,
    File,
    Get,
    Hello,
    LocalProtocolError,
    Ping,
    Pong,
    Put,
    RemoteProtocolError,
    Resize,
    Role,
    Run,
    Signal,
    Started,
    Stderr,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
    client_proof,
    proofs_match,
    server_proof,
)
from rexec.protocol._messages import _Message
from rexec.server.admission import Admission
from rexec.server.audit import AuditError, AuditLog
from rexec.server.config import ServerConfig
from rexec.server.events import NoObserver, ServerObserver
from rexec.server.policy import Denied, KeyRules, authorize, authorize_transfer
from rexec.files import OutsideRoots, Roots, TempRecords, open_path
from rexec.server.process_records import ProcessRecords
from rexec.server.runner import CommandRunner, Outcome, Stream
from rexec.server.spawn import SpawnError
from rexec.server.transfers import (
    GetTransfer,
    Place,
    PutTransfer,
    TransferError,
    TransferOutcome,
)

#: How long a fatal error frame may take to leave before the socket is dropped.
FATAL_CLOSE_TIMEOUT = 1.0
#: Transport buffer above which runners stop reading output.
WRITE_HIGH_WATER = 1024 * 1024
#: Transport buffer above which the session stops reading its socket too. Below
#: it, frames that answer the client (errors for refused runs, started) may
#: still queue, so a client that has stopped reading can still cancel; above
#: it, a client flooding requests without reading answers is simply not read.
WRITE_HARD_LIMIT = 4 * WRITE_HIGH_WATER
#: After a client's FIN, how often to probe with a ping while its commands run:
#: a client that really closed answers the probe with a reset, which ends the
#: session and its commands even when they print nothing.
EOF_PROBE_INTERVAL = 0.5
#: How long a command's ``started`` may wait to travel with its first output or
#: its exit, in one write: a command that ends at once then costs its client
#: one wake-up, not two. Short, so a quiet command's client still learns its
#: pid at once for any human purpose.
STARTED_DELAY = 0.005


class Server:
    """State shared by all sessions: config, audit log, and running commands."""

    def __init__(
        self,
        config: ServerConfig,
        audit: AuditLog,
        records: ProcessRecords | None = None,
        observer: ServerObserver | None = None,
    ) -> None:
        self.config = config
        self.audit = audit
        self.records = records
        #: Temporary files of puts in flight, for the start-up sweep; set by rexec.daemon.
        self.temp_records: TempRecords | None = None
        self.admission = Admission(config.admission_limits)
        #: Told of what happens (rexec.ops.metrics counts it); set by rexec.daemon.
        self.observer: ServerObserver = observer or NoObserver()
        self.sessions: set[Session] = set()
        self.running_commands = 0
        self.shutting_down = False
        self._session_numbers = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()

    def new_session(self) -> Session:
        return Session(self, next(self._session_numbers))

    def command_started(self, pgid: int | None = None) -> None:
        """Count a command (or transfer) in; record its process group, if any."""
        self.running_commands += 1
        self._idle.clear()
        if pgid is not None and self.records is not None:
            self.records.add(pgid)

    def command_finished(self, pgid: int | None = None) -> None:
        self.running_commands -= 1
        if self.running_commands == 0:
            self._idle.set()
        if pgid is not None and self.records is not None:
            self.records.remove(pgid)

    async def shut_down(self) -> None:
        """Refuse new commands, let running ones finish within the shutdown
        grace, cancel the rest, then close every session with a fatal
        ``server.shutting_down``."""
        self.shutting_down = True
        try:
            await asyncio.wait_for(self._idle.wait(), self.config.settings.shutdown_grace)
        except TimeoutError:
            for session in list(self.sessions):
                session.cancel_commands()
            graces = self.config.graces
            try:
                await asyncio.wait_for(self._idle.wait(), graces.kill + graces.drain + 1.0)
            except TimeoutError:
                pass  # reported below: a command that survived SIGKILL is the kernel's
        for session in list(self.sessions):
            session.fatal(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        deadline = FATAL_CLOSE_TIMEOUT + 0.5
        while self.sessions and deadline > 0:
            await asyncio.sleep(0.05)
            deadline -= 0.05


class Session(asyncio.Protocol):
    """One client connection, from ``hello`` to close."""

    def __init__(self, server: Server, number: int) -> None:
        self.server = server
        self.number = number
        config = server.config
        self.conn = Connection(Role.SERVER, limits=config.limits)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        #: Running commands and file transfers by id: both take stdin, cancel
        #: and output pausing the same way (rexec/server/transfers.py).
        self.runners: dict[int, CommandRunner | PutTransfer | GetTransfer] = {}
        self._nonce = secrets.token_hex(32)
        self._write_paused = False
        self._read_paused = False
        self._read_eof = False
        self._closing = False
        self.source = "?"  # the peer's address, without the port: admission's key
        self.key: KeyRules | None = None  # set once authenticated
        self._admitted = False
        self._auth_timer: asyncio.TimerHandle | None = None
        self._eof_probe: asyncio.TimerHandle | None = None
        self._frame_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._pending_started: dict[int, tuple[Started, asyncio.TimerHandle]] = {}
        # Answers held back while the client isn't reading, coalesced so that
        # they can't grow without bound: the latest ping, credit per command.
        self._held_pong: int | None = None
        self._held_credit: dict[int, int] = {}
        self._probe_seq = 0

    # --- transport events -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.source = peer[0] if peer else "?"
        self.server.sessions.add(self)
        self.server.observer.connection_opened()
        refusal = self.server.admission.refusal(self.source, time.monotonic())
        if refusal is not None:
            self._audit("refused_connection", reason=refusal)
            self.server.observer.admission_refused()
            self.fatal(ErrorCode.BUSY, refusal)
            return
        self.server.admission.opened(self.source)
        self._admitted = True
        self._audit("connect")
        loop = asyncio.get_running_loop()
        self._auth_timer = loop.call_later(
            self.server.config.settings.auth_timeout, self._auth_expired
        )
        self._send(
            Hello(
                versions=list(SUPPORTED_VERSIONS),
                nonce=self._nonce,
                server=self.server.config.server_name,
                limits=self.conn.announced_limits(),
            )
        )

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self.conn.receive_data(data)
            while not self._closing and (message := self.conn.next_event()) is not None:
                self._handle(message)
            self._watch_frame_deadline()
            self._rearm_idle_timer()
        except RemoteProtocolError as exc:
            if exc.code is ErrorCode.FRAME_TOO_LARGE and self.conn.state is ConnectionState.HANDSHAKE:
                self._audit("bad_frame", code=exc.code.value, note="possibly another protocol")
            self.fatal(exc.code, exc.message)
        except Exception:  # a bug here must end this connection only, loudly in the log
            traceback.print_exc(file=sys.stderr)
            self.fatal(ErrorCode.INTERNAL, "internal server error")

    def eof_received(self) -> bool:
        # A half-close ends the client's input, not its interest in the output:
        # running commands go on, and the connection closes when they are done.
        # A FIN inside a frame, though, is a client that left.
        if self._read_eof:
            return True  # seen again after reading was paused and resumed
        self._read_eof = True
        try:
            self.conn.receive_data(b"")
        except RemoteProtocolError:
            # The client left mid-frame: nothing more may be sent (the
            # connection's state is closed) until connection_lost runs.
            self._closing = True
            if self.transport is not None:
                self.transport.abort()
            return False
        for runner in list(self.runners.values()):
            if isinstance(runner, PutTransfer):
                runner.input_ended()  # [transfer.put.half_close]
            elif isinstance(runner, CommandRunner):
                # No stdin can follow a FIN: the command reads EOF once the
                # bytes already received are written (else a `cat` waiting
                # for input would hold the connection open forever).
                runner.close_stdin()
        if not self.runners:
            self._close()
        else:
            self._probe_after_eof()
        return True

    def _probe_after_eof(self) -> None:
        if self._closing or not self.runners:
            return
        self._probe_seq += 1
        self._send(Ping(seq=self._probe_seq))
        self._eof_probe = asyncio.get_running_loop().call_later(
            EOF_PROBE_INTERVAL, self._probe_after_eof
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        for timer in (
            self._auth_timer, self._eof_probe, self._frame_timer, self._idle_timer, self._stall_timer
        ):
            if timer is not None:
                timer.cancel()
        for _, started_timer in self._pending_started.values():
            started_timer.cancel()
        self._pending_started.clear()
        if self._admitted:
            self.server.admission.closed(self.source, authenticated=self.key is not None)
        for runner in list(self.runners.values()):
            runner.cancel()  # it goes on until reaped; its exit goes nowhere
            # Output paused for a client that wasn't reading must flow again
            # (into nothing, as _closing is set): a paused runner never sees
            # its pipes close, never finishes, and holds its command slot,
            # descriptors and zombie for ever.
            runner.resume_output()
        self.server.sessions.discard(self)
        self._audit("disconnect", running=len(self.runners))

    def pause_writing(self) -> None:
        self._write_paused = True
        for runner in self.runners.values():
            runner.pause_output()
        stall_timeout = self.server.config.settings.stall_timeout
        if stall_timeout > 0:
            self._stall_timer = asyncio.get_running_loop().call_later(stall_timeout, self._stalled)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if self._held_pong is not None:
            self._send(Pong(seq=self._held_pong))
            self._held_pong = None
        for command_id, nbytes in self._held_credit.items():
            self._send(StdinCredit(id=command_id, bytes=nbytes))
        self._held_credit.clear()
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        for runner in list(self.runners.values()):
            runner.resume_output()

    # --- messages ----------------------------------------------------------------

    def _handle(self, message: _Message) -> None:
        if isinstance(message, Auth):
            self._authenticate(message)
        elif isinstance(message, Run):
            self._start(message)
        elif isinstance(message, (Put, Get)):
            self._start_transfer(message)
        elif isinstance(message, Stdin):
            self.runners[message.id].write_stdin(message.data)
        elif isinstance(message, StdinEof):
            runner = self.runners[message.id]
            if isinstance(runner, PutTransfer):
                runner.close_stdin(message)  # a put's end may carry its size and digest
            else:
                runner.close_stdin()
        elif isinstance(message, Signal):
            self.runners[message.id].send_signal(signal.Signals[message.signal])
        elif isinstance(message, Cancel):
            self.runners[message.id].cancel()
        elif isinstance(message, Resize):
            self.runners[message.id].resize(message.rows, message.cols)
        elif isinstance(message, Ping):
            if self._write_paused:
                self._held_pong = message.seq
            else:
                self._send(Pong(seq=message.seq))
        elif isinstance(message, Error) and message.fatal:
            self._close()
        # pong and non-fatal errors from a client need no action

    def _authenticate(self, auth: Auth) -> None:
        config = self.server.config
        if auth.version not in SUPPORTED_VERSIONS:
            self.fatal(ErrorCode.VERSION_UNSUPPORTED, "protocol version not supported")
            return
        # Every key is tried, so the time taken says nothing about which matched.
        matched: KeyRules | None = None
        for rules in config.keys:
            expected = client_proof(rules.key, self._nonce, auth.nonce, config.server_name)
            if proofs_match(expected, auth.mac) and matched is None:
                matched = rules
        if matched is None:
            self._audit("auth", ok=False)
            self.server.observer.auth_failed("failed")
            self.server.admission.failed(self.source, time.monotonic())
            self.fatal(ErrorCode.AUTH_FAILED, "authentication failed")
            return
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        self.key = matched
        self.server.admission.authenticated(self.source)
        self._audit("auth", ok=True, key=matched.name)
        self._send(AuthOk(mac=server_proof(matched.key, self._nonce, auth.nonce, config.server_name)))

    def _start(self, run: Run) -> None:
        server = self.server
        if not self._may_start(run):
            return
        what = {"argv": run.argv} if run.argv is not None else {"shell": run.shell}
        assert self.key is not None
        try:
            run = authorize(run, self.key, server.config.settings)
            cwd_fd = self._open_cwd(run)
        except Denied as denied:
            self._refuse(run, denied.code, denied.reason, **what)
            return
        try:
            self._start_in(run, what, cwd_fd)
        finally:
            os.close(cwd_fd)

    def _open_cwd(self, run: Run) -> int:
        """The command's working directory (``cwd``, else the account's
        home), resolved within the server's and the key's roots now, when it
        is used: the command starts in this descriptor's directory, whatever
        a path to it leads to by then.

        Raises:
            Denied: ``command.denied`` outside the roots, ``cwd.invalid``
                when it is not an existing directory.
        """
        assert self.key is not None
        home = self.server.config.process_policy.account.home
        roots = Roots.intersection(self.server.config.settings.cwd_roots, self.key.cwd_roots)
        try:
            return open_path(run.cwd or home, roots, base=home, flags=os.O_PATH | os.O_DIRECTORY)
        except OutsideRoots:
            raise Denied(ErrorCode.COMMAND_DENIED, "the directory is outside the allowed roots") from None
        except OSError:
            raise Denied(ErrorCode.CWD_INVALID, "cwd is not an existing directory") from None

    def _start_in(self, run: Run, what: dict[str, Any], cwd_fd: int) -> None:
        server = self.server
        assert self.key is not None
        try:
            server.audit.write(
                "exec", peer=self.peer, session=self.number, key=self.key.name, id=run.id, **what,
                cwd=run.cwd, env=sorted(run.env), pty=run.pty is not None,
                timeout=run.timeout, output_limit=run.output_limit,
            )
        except AuditError:
            self._refuse(run, ErrorCode.AUDIT_UNAVAILABLE, "the audit log can't be written")
            return
        # The child changes into the directory through the descriptor it
        # inherits (it is closed at exec), not through a path looked up again.
        runner = CommandRunner(
            run.model_copy(update={"cwd": f"/proc/self/fd/{cwd_fd}"}),
            stdin_window=server.config.limits.stdin_window,
            on_output=lambda stream, data: self._output(run.id, stream, data),
            on_stdin_credit=lambda nbytes: self._grant_credit(run.id, nbytes),
            on_finish=lambda outcome: self._finished(run.id, outcome),
            graces=server.config.graces,
            policy=server.config.process_policy,
        )
        try:
            pid = runner.start()
        except SpawnError as exc:
            self._refuse(run, exc.code, exc.message)
            return
        self.runners[run.id] = runner
        server.command_started(pid)
        server.observer.command_started()
        timer = asyncio.get_running_loop().call_later(STARTED_DELAY, self._flush_started, run.id)
        self._pending_started[run.id] = (Started(id=run.id, pid=pid), timer)
        if self._write_paused:
            runner.pause_output()

    def _start_transfer(self, request: Put | Get) -> None:
        server = self.server
        if not self._may_start(request):
            return
        assert self.key is not None
        home = os.path.expanduser("~")
        # Resolved (within the roots) by the transfer when it opens the file;
        # audited as the client named it, joined to the home directory.
        path = os.path.join(home, request.path)
        try:
            if server.config.process_policy.switch_user:
                # File I/O happens in the daemon, with its privileges, not the
                # account's: refuse rather than write files as the wrong user.
                raise Denied(ErrorCode.COMMAND_DENIED, "file transfer is off when run_as is set")
            authorize_transfer(self.key)
        except Denied as denied:
            self._refuse(request, denied.code, denied.reason, path=path)
            return
        what = (
            {"size": request.size, "mode": oct(request.mode), "sha256": request.sha256,
             "resume": request.resume is not None}
            if isinstance(request, Put)
            else {"offset": request.offset}
        )  # fmt: skip
        try:
            server.audit.write(
                request.type, peer=self.peer, session=self.number, id=request.id, path=path, **what
            )
        except AuditError:
            self._refuse(request, ErrorCode.AUDIT_UNAVAILABLE, "the audit log can't be written")
            return

        def on_finish(outcome: TransferOutcome) -> None:
            self._transfer_finished(request, outcome)

        place = Place(
            Roots.intersection(server.config.settings.cwd_roots, self.key.cwd_roots),
            home, server.temp_records,
        )  # fmt: skip
        transfer: PutTransfer | GetTransfer
        if isinstance(request, Put):
            transfer = PutTransfer(
                request, request.path, place,
                stdin_window=server.config.limits.stdin_window,
                on_file=lambda size, mode: self._send(File(id=request.id, size=size, mode=mode)),
                on_stdin_credit=lambda n: self._grant_credit(request.id, n),
                on_finish=on_finish,
            )  # fmt: skip
        else:
            transfer = GetTransfer(
                request, request.path, place,
                on_file=lambda size, mode, mtime: self._send(
                    File(id=request.id, size=size, mode=mode, mtime=mtime)
                ),
                on_data=lambda data: self._send(Stdout.with_data(request.id, data)),
                on_finish=on_finish,
            )  # fmt: skip
        self.runners[request.id] = transfer
        server.command_started()
        transfer.start()
        if self._write_paused:
            transfer.pause_output()

    def _transfer_finished(self, request: Put | Get, outcome: TransferOutcome) -> None:
        del self.runners[request.id]
        self._held_credit.pop(request.id, None)  # no credit may follow the terminal frame
        self.server.command_finished()
        error = outcome.error
        if error is not None and error.code is ErrorCode.FILE_CANCELLED and self.server.shutting_down:
            error = TransferError(ErrorCode.SHUTTING_DOWN, "the server is shutting down")
        self._audit(
            "transfer_end", id=request.id, op=request.type, ok=error is None,
            code=None if error is None else error.code.value,
            bytes=outcome.size, sha256=outcome.sha256,
        )  # fmt: skip
        if error is None:
            self._send(Done(id=request.id, size=outcome.size, sha256=outcome.sha256))
        else:
            self._send(Error(code=error.code.value, message=error.message, fatal=False, id=request.id))
        if self._read_eof and not self.runners:
            self._close()
        self._rearm_idle_timer()

    def _may_start(self, request: Run | Put | Get) -> bool:
        """Refuse a request the server can't take now (shutting down, or at its
        command limits: ``busy``, which a client may retry); True otherwise."""
        server = self.server
        if server.shutting_down:
            self._refuse(request, ErrorCode.SHUTTING_DOWN, "the server is shutting down")
            return False
        if (
            len(self.runners) >= server.config.settings.max_commands
            or server.running_commands >= server.config.settings.max_total_commands
        ):
            self._refuse(request, ErrorCode.BUSY, "too many running commands; retry later")
            return False
        return True

    def _refuse(
        self, request: Run | Put | Get, code: ErrorCode, message: str, **audit_fields: Any
    ) -> None:
        """End a request that never started: audited with why, answered with a
        command-scoped error."""
        self._audit("refused", id=request.id, code=code.value, reason=message, **audit_fields)
        self.server.observer.refused(code.value)
        self._send(Error(code=code.value, message=message, fatal=False, id=request.id))

    def _grant_credit(self, command_id: int, nbytes: int) -> None:
        # Withholding credit from a client that isn't reading is also the
        # natural backpressure on its stdin.
        if self._write_paused:
            self._held_credit[command_id] = self._held_credit.get(command_id, 0) + nbytes
        else:
            self._send(StdinCredit(id=command_id, bytes=nbytes))

    def _output(self, command_id: int, stream: Stream, data: bytes) -> None:
        self.server.observer.output(stream, len(data))
        kind = Stdout if stream is Stream.STDOUT else Stderr
        self._send(kind.with_data(command_id, data))

    def _finished(self, command_id: int, outcome: Outcome) -> None:
        runner = self.runners.pop(command_id)
        self._held_credit.pop(command_id, None)  # no credit may follow the exit
        self.server.command_finished(runner.pid)
        self.server.observer.command_finished(outcome)
        self._audit(
            "exit", id=command_id, exit_code=outcome.exit_code, signal=outcome.signal,
            timed_out=outcome.timed_out, cancelled=outcome.cancelled,
            output_capped=outcome.output_capped, pipes_held=outcome.pipes_held,
            duration=round(outcome.duration, 6), stdout_bytes=outcome.stdout_bytes,
            stderr_bytes=outcome.stderr_bytes, stdin_bytes=outcome.stdin_bytes,
        )
        self._send(
            Exit(
                id=command_id,
                exit_code=outcome.exit_code,
                signal=outcome.signal,
                signal_name=outcome.signal_name,
                timed_out=outcome.timed_out,
                cancelled=outcome.cancelled,
                output_capped=outcome.output_capped,
                pipes_held=outcome.pipes_held,
                duration=outcome.duration,
                stdout_bytes=outcome.stdout_bytes,
                stderr_bytes=outcome.stderr_bytes,
                stdin_bytes=outcome.stdin_bytes,
            )
        )
        if self._read_eof and not self.runners:
            self._close()
        self._rearm_idle_timer()

    # --- sending and closing -------------------------------------------------------

    def _flush_started(self, command_id: int) -> None:
        entry = self._pending_started.pop(command_id, None)
        if entry is not None:
            self._send(entry[0])

    def _send(self, message: _Message) -> None:
        if self._closing or self.transport is None:
            return  # the client is gone: its commands' output goes nowhere
        try:
            pending = (
                self._pending_started.pop(getattr(message, "id", -1), None)
                if self._pending_started
                else None
            )
            if pending is None:
                self.transport.write(self.conn.send(message))
            else:  # the command's deferred ``started`` goes first, in the same write
                started, timer = pending
                timer.cancel()
                self.transport.write(self.conn.send(started) + self.conn.send(message))
            if (
                not self._read_paused
                and self.transport.get_write_buffer_size() > WRITE_HARD_LIMIT
            ):
                self._read_paused = True
                self.transport.pause_reading()
        except LocalProtocolError:
            traceback.print_exc(file=sys.stderr)
            if (isinstance(message, Error) and message.fatal) or self.conn.state is ConnectionState.CLOSED:
                # Not even a fatal error can be said here: drop the connection
                # (calling fatal() again would recurse).
                self._closing = True
                self.transport.abort()
            else:
                self.fatal(ErrorCode.INTERNAL, "internal server error")

    def fatal(self, code: ErrorCode, message: str) -> None:
        """Send a fatal error, then close; drop the socket if the frame can't
        leave within ``FATAL_CLOSE_TIMEOUT`` (a peer that does not read)."""
        if self._closing or self.transport is None:
            return
        self._send(Error(code=code.value, message=message, fatal=True))
        self._close()

    def cancel_commands(self) -> None:
        for runner in list(self.runners.values()):
            runner.cancel()

    def _close(self) -> None:
        if self._closing or self.transport is None:
            return
        self._closing = True
        transport = self.transport
        transport.close()
        asyncio.get_running_loop().call_later(FATAL_CLOSE_TIMEOUT, transport.abort)

    def _watch_frame_deadline(self) -> None:
        """Arm the frame deadline when a frame has begun, disarm it when none is
        in progress: a peer dribbling a frame a byte at a time (slowloris) is
        cut off however often it sends, since the clock starts at the frame's
        first byte."""
        if self.conn.mid_frame:
            if self._frame_timer is None:
                self._frame_timer = asyncio.get_running_loop().call_later(
                    self.server.config.settings.frame_timeout, self._frame_expired
                )
        elif self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None

    def _frame_expired(self) -> None:
        self._audit("frame_timeout")
        self.fatal(ErrorCode.FRAME_TIMEOUT, "frame not completed within the frame deadline")

    def _rearm_idle_timer(self) -> None:
        """Restart the idle clock: it runs while the session is authenticated,
        silent, and has nothing running."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        idle_timeout = self.server.config.settings.idle_timeout
        if idle_timeout > 0 and self.key is not None and not self.runners and not self._closing:
            self._idle_timer = asyncio.get_running_loop().call_later(idle_timeout, self._idle_expired)

    def _idle_expired(self) -> None:
        self._audit("idle_timeout")
        self.fatal(ErrorCode.IDLE_TIMEOUT, "connection idle for too long")

    def _stalled(self) -> None:
        """The client has left output unread for the stall timeout: end its
        commands (their exits can't reach it) and drop the connection."""
        self._audit("client_stalled", running=len(self.runners))
        self.cancel_commands()
        if self.transport is not None:
            self._closing = True
            self.transport.abort()

    def _auth_expired(self) -> None:
        self._audit("auth", ok=False, reason="timeout")
        self.server.observer.auth_failed("timeout")
        self.fatal(ErrorCode.AUTH_TIMEOUT, "authentication deadline expired")

    def _audit(self, event: str, **fields: Any) -> None:
        self.server.audit.try_write(event, session=self.number, peer=self.peer, **fields)
