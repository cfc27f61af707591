"""One remote shell of a ``rexec shell`` session, and the helpers beside it.

A session is three commands on one connection (the protocol multiplexes
them; nothing on the server knows they belong together):

- the shell: bash when it is the account's login shell, else ``/bin/sh``,
  interactive, for the whole session. Its stdin is the command stream this
  module writes (``remote.bash`` / ``remote.sh`` say what goes on it), its
  stdout and stderr are the session's output, as they are;
- a ``cat`` whose stdin pipe the shell writes records into, by
  ``/proc/PID/fd/0``, and whose stdout is the control channel (``channel``);
- a ``sleep`` whose stdin pipe a line reads as its own (``line_stdin``).

A line's output is complete when the fresh marker sent after it has come back
on both streams (``output``). After each line the shell sends its state; a new
shell (after a lost connection, or when the shell was killed) starts by
running it (``state.Snapshot``), before rexec's own functions and in place of
the start-up files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from ..connection import ClientConnection
from ..errors import RemoteCommandError, RexecConnectionError
from ..process import RemoteProcess
from ..result import ExitStatus
from ..term.relay import InterruptForwarder, stop_task
from .channel import ChannelClosed, ControlChannel, Record
from .dialects import BASH, SESSION_COMMAND, SH, STARTUP_ONLY, script
from .interrupts import LineControl
from .line_stdin import LineStdin
from .output import MarkedStream, StreamEnded, forget
from .state import EXIT_TIMEOUT, RemoteIdentity, Snapshot
from .window import WindowSize, terminal_env

#: Seconds a Tab completion may take before it completes nothing.
COMPLETION_TIMEOUT = 5.0
#: Seconds the shell gets to save its history and run its exit traps on leaving.
LEAVE_TIMEOUT = 5.0
#: Seconds the shell may outlive its record channel (then the session is lost).
CHANNEL_END_GRACE = 5.0
#: Seconds the rest of a line's output may take once its status has come.
OUTPUT_END_TIMEOUT = 30.0


class ShellEnded(Exception):
    """The remote shell ended (``exit`` in a line, or it was killed)."""

    def __init__(self, status: ExitStatus, *, killed_by_rexec: bool = False) -> None:
        super().__init__(status.describe())
        self.status = status
        #: rexec ended it (Ctrl-C pressed three times, a line's time limit).
        self.killed_by_rexec = killed_by_rexec


@dataclasses.dataclass(frozen=True)
class LineEnd:
    """How a line ended: its status and the shell's directory after it, or
    ``more`` (it was not complete: nothing ran)."""

    status: int = 0
    cwd: str = ""
    more: bool = False
    timed_out: bool = False


@dataclasses.dataclass(frozen=True)
class Ready:
    """What a new shell says about itself."""

    shell: str
    identity: RemoteIdentity
    cwd: str


Writer = Callable[[bytes], Awaitable[None]]
#: The records that answer a line.
_ANSWERS = {"status", "more", "top"}


class RemoteShell:
    """A started remote shell (``opening.open_shell`` makes one).

    Attributes:
        dialect: the kind of shell it is.
        ready: what it said about itself when it was ready.
    """

    def __init__(
        self,
        connection: ClientConnection,
        control: RemoteProcess,
        on_snapshot: Callable[[Snapshot], None],
        on_warning: Callable[[str], None],
        cwd: str | None,
    ) -> None:
        self._connection = connection
        #: Where its commands start (None: the server's default directory).
        self._cwd = cwd
        self._control = control
        #: The last line's interrupts: whether its time limit expired, whether
        #: rexec killed the shell.
        self._line_control: LineControl | None = None
        self._on_snapshot = on_snapshot
        self._on_warning = on_warning
        self._mark = f"rexec-{secrets.token_hex(8)}"
        #: What every record of this shell starts with (see ``channel``).
        self._key = secrets.token_hex(16)
        self._channel = ControlChannel(control.stdout, self._key, self._state_record, on_warning)
        self._line_stdin = LineStdin(connection, cwd)
        self._tasks: list[asyncio.Task[Any]] = [asyncio.create_task(self._channel.run())]
        self._session: RemoteProcess | None = None
        self._ended: asyncio.Task[ExitStatus] | None = None
        self._stdout: MarkedStream | None = None
        self._stderr: MarkedStream | None = None
        self._seq = 0
        self.dialect = BASH
        self.ready: Ready | None = None
        self._window = WindowSize(None)
        self._out: Writer | None = None

    # --- start -------------------------------------------------------------------

    async def start(
        self, out: Writer, err: Writer, snapshot: Snapshot | None, status: int, posix_sh: bool
    ) -> Ready:
        """Start the shell, its output going to ``out`` and ``err``; make it
        the shell ``snapshot`` describes (with ``status`` as its $?), else
        read the start-up files a login shell reads. With ``posix_sh`` it is
        /bin/sh even where the login shell is bash.

        Raises:
            ShellEnded: the shell ended before it was ready.
            RemoteCommandError: the server refused it.
            RexecConnectionError: the connection was lost.
        """
        self._line_stdin.prepare()
        named = self._channel.expect({"shell"}, 0)
        command = SESSION_COMMAND.format(
            control=self._control.pid, login_shell="/bin/sh" if posix_sh else '"${SHELL-}"'
        )
        env = terminal_env()
        try:
            session = await self._connection.start(
                command, shell=True, stdin=True, env=env, cwd=self._cwd
            )
        except RemoteCommandError as exc:
            if exc.code != "env.forbidden":
                raise
            # A server that does not take these: the shell goes on without
            # them (COLUMNS and LINES still come, from the first line on).
            self._on_warning(f"the terminal's TERM, COLUMNS and LINES not passed: {exc}")
            session = await self._connection.start(command, shell=True, stdin=True, cwd=self._cwd)
            env = {}
        if env and snapshot is None:
            self._window = WindowSize((int(env["LINES"]), int(env["COLUMNS"])))
        self._session = session
        # First on its stdin: SESSION_COMMAND reads it before anything else.
        self._send(f"{self._key}\n".encode())
        self._ended = asyncio.create_task(session.wait())
        self._out = out
        self._stdout = MarkedStream(session.stdout, out)
        self._stderr = MarkedStream(session.stderr, err)
        self._tasks += [
            asyncio.create_task(self._stdout.run()),
            asyncio.create_task(self._stderr.run()),
        ]
        record = await self._until(named)
        self.dialect = BASH if record.fields()[0] == "bash" else SH
        text = b""
        if snapshot is not None and snapshot.shell == self.dialect.name:
            text += snapshot.restore_script()
            then = f"__rexec_restored {status}"
            if self.dialect is BASH:
                then += ' && set -- "${__rexec_u_args[@]}"'
        else:
            then = f'{self.dialect.eval_word} "$__rexec_s_login" </dev/null'
        nonce = secrets.token_hex(16)
        ready = self._channel.expect({"ready"}, 0)
        ending = asyncio.gather(self._expect_markers(nonce), self._channel.expect({"state"}, 0))
        begin = f"__rexec_begin /proc/{self._control.pid}/fd/0 {self._mark} {self._key} && {then}"
        self._send(
            text
            + script(self.dialect.script)
            + f"\n{begin}; __rexec_ready {self._key} {nonce}; {STARTUP_ONLY}\n".encode()
        )
        try:
            fields = (await self._until(ready)).fields()
            await self._until(ending)
        finally:
            forget(ending)
        shell, user, host, home = (fields + [""] * 4)[:4]
        cwd = "\n".join(fields[4:])  # (a directory's name may hold a newline)
        self.ready = Ready(shell, RemoteIdentity(user, host, home), cwd)
        return self.ready

    # --- lines ---------------------------------------------------------------------

    async def run_line(
        self,
        text: str,
        mode: str,
        *,
        typed_input: Callable[[], Awaitable[None]] | None,
        interrupts: InterruptForwarder,
        timeout: float | None,
    ) -> LineEnd:
        """Run ``text`` in the shell, its output going where ``start`` said;
        return how it ended. ``mode`` is ``run``, ``check`` (only if it is
        complete; else ``more``) or ``force`` (as it is). With
        ``typed_input`` local stdin feeds the line once that returns (the
        terminal is free: the line is sent before), else it reads nothing.
        Ctrl-C (through ``interrupts``) and ``timeout`` act as
        ``interrupts.LineControl`` says.

        Raises:
            ShellEnded: the shell ended during the line.
            RexecConnectionError: the connection was lost.
        """
        self._seq += 1
        seq, nonce = self._seq, secrets.token_hex(16)
        stdin_path = await self._line_stdin.path() if typed_input else "/dev/null"
        answer = self._channel.expect(_ANSWERS, seq)
        # The line is over when its output has all come and the state after
        # it is safe here (a reconnect right after restores it).
        ending = asyncio.gather(self._expect_markers(nonce), self._channel.expect({"state"}, seq))
        done = f"__rexec_done {seq} {nonce}\n".encode()
        last = self._line_control
        # After a line's time limit `$?` is 124, as the prompt said; the shell saw SIGINT.
        status_fix = f"__rexec_s_status={EXIT_TIMEOUT}; " if last and last.timed_out else ""
        self._send(
            f"{self._window.update()}{status_fix}"
            f"__rexec_pre {seq} {mode} {stdin_path} {self.dialect.quote(text)}"
            f' && {self.dialect.eval_word} "$__rexec_s_cmd" <"$__rexec_s_in"\n'.encode()
            + done
        )
        assert self._session is not None
        self._line_control = control = LineControl(
            self._session, self._connection, self._cwd, timeout
        )
        control.killed = last is not None and last.killed  # (see ``ended``)
        feeder = asyncio.create_task(self._feed(typed_input, interrupts)) if typed_input else None
        try:
            with interrupts.attached(control):
                record = await self._until(answer)
                while record.kind == "top":
                    # sh dropped the line's end with what it had read
                    # ahead (see remote.sh): send it again.
                    self._send(done)
                    record = await self._until(self._channel.expect(_ANSWERS, seq))
            if record.kind != "more":
                self._markers_not_coming(record)
                try:
                    await self._until(asyncio.wait_for(ending, OUTPUT_END_TIMEOUT))
                except TimeoutError:
                    self._on_warning("the end of the line's output is late; more may follow")
        finally:
            control.close()
            forget(ending)
            await stop_task(feeder)
            self._line_stdin.after_line()
        if record.kind == "more":
            return LineEnd(more=True)
        assert self._out is not None and self._stdout is not None and self._stderr is not None
        if control.left_mid_line(max(self._stdout.shown_at, self._stderr.shown_at)):
            await self._out(b"\n")  # the prompt below the terminal's ^C
        status, cwd, _ = record.line_end()
        return LineEnd(status, cwd, timed_out=control.timed_out)

    async def _feed(
        self, terminal_free: Callable[[], Awaitable[None]], interrupts: InterruptForwarder
    ) -> None:
        await terminal_free()
        await self._line_stdin.forward(interrupts)

    async def complete(self, kind: str, word: str) -> list[str]:
        """Candidates for ``word`` (``kind``: ``command``, ``variable`` or
        ``path``); none when the shell does not answer in time."""
        self._seq += 1
        answer = self._channel.expect({"complete"}, self._seq)
        self._send(f"__rexec_complete {self._seq} {kind} {self.dialect.quote(word)}\n".encode())
        try:
            record = await asyncio.wait_for(self._until(answer), COMPLETION_TIMEOUT)
        except (TimeoutError, ShellEnded, ChannelClosed):
            return []
        return record.candidates()

    # --- the end ---------------------------------------------------------------------

    def has_ended(self) -> bool:
        return self._ended is not None and self._ended.done()

    async def wait_ended(self) -> ExitStatus:
        """Wait until the shell has ended, its output shown; return how."""
        assert self._ended is not None
        status = await asyncio.shield(self._ended)
        await self._output_shown()
        return status

    async def leave(self, status: int) -> None:
        """Leave as ``exit STATUS`` would: the shell saves its history and
        runs its exit trap and ~/.bash_logout; then everything is ended."""
        if self._session is not None and not self.has_ended():
            with contextlib.suppress(RexecConnectionError, BrokenPipeError):
                self._send(f"__rexec_leave {status}\n".encode())
            with contextlib.suppress(TimeoutError, RexecConnectionError):
                await asyncio.wait_for(self.wait_ended(), LEAVE_TIMEOUT)
        await self.close()

    async def close(self) -> None:
        """End the shell and its helpers (without waiting for them)."""
        for process in (self._session, self._control):
            if process is not None and process.status is None:
                with contextlib.suppress(RexecConnectionError):
                    process.cancel()
        with contextlib.suppress(RexecConnectionError):
            await self._line_stdin.close()
        for task in self._tasks:
            await stop_task(task)
        if self._ended is not None:
            await stop_task(self._ended)  # type: ignore[arg-type]

    # --- helpers -------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        assert self._session is not None and self._session.stdin is not None
        self._session.stdin.write(data)

    def _markers_not_coming(self, record: Record) -> None:
        """The streams a ``status`` record names get no marker (sh holds the
        session's pipe on none of its descriptors)."""
        unmarked = record.line_end()[2]
        for name, stream in (("stdout", self._stdout), ("stderr", self._stderr)):
            if name in unmarked and stream is not None:
                stream.not_coming()

    def _expect_markers(self, nonce: str) -> asyncio.Future[Any]:
        assert self._stdout is not None and self._stderr is not None
        marker = b"\0" + nonce.encode()
        return asyncio.gather(self._stdout.expect(marker), self._stderr.expect(marker))

    def _state_record(self, record: Record) -> None:
        snapshot = Snapshot.whole(self.dialect.name, record.payload, self._mark)
        if snapshot is not None:
            self._on_snapshot(snapshot)

    async def _output_shown(self) -> None:
        for task in self._tasks[1:]:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def _until(self, awaitable: Awaitable[Any]) -> Any:
        """The result of ``awaitable``, unless the shell ends first.

        Raises:
            ShellEnded: the shell ended (its output all shown).
            RexecConnectionError: the connection was lost.
        """
        assert self._ended is not None
        waited = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait({waited, self._ended}, return_when=asyncio.FIRST_COMPLETED)
            if waited.done() and not waited.cancelled() and waited.exception() is None:
                return waited.result()
            if (
                waited.done()
                and not waited.cancelled()
                and isinstance(waited.exception(), ChannelClosed)
            ):
                # The record helper ended: the server is ending the session
                # (shutting down), or it was killed; the shell goes with it.
                await asyncio.wait({self._ended}, timeout=CHANNEL_END_GRACE)
                if not self._ended.done():
                    raise RexecConnectionError("the session's control channel ended")
            if not self._ended.done():
                return waited.result()  # its exception: a timeout
        finally:
            if not waited.done():
                waited.cancel()
                with contextlib.suppress(asyncio.CancelledError, StreamEnded, ChannelClosed):
                    await waited
        status = await self.wait_ended()
        if status.connection_lost:
            raise RexecConnectionError(status.connection_error or "connection lost")
        raise self.ended(status)

    def ended(self, status: ExitStatus) -> ShellEnded:
        """This shell's end with ``status``, killed by rexec if a line's
        interrupts (Ctrl-C a third time, its time limit) killed it, however
        late the end is noticed: in that line, at the next prompt, or in a
        line sent before it was (not a server shutting down, then)."""
        control = self._line_control
        return ShellEnded(status, killed_by_rexec=control is not None and control.killed)
