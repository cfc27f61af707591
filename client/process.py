"""``RemoteProcess``: one command running on a server, like
``asyncio.subprocess.Process``.

The connection creates it and feeds it the frames of its command id; the user
reads ``stdout``/``stderr``, writes ``stdin``, sends signals and awaits
``wait()``. It always ends: with the server's ``exit`` frame, or with a
"connection lost" status when the connection ends first.
"""

from __future__ import annotations

import asyncio
import signal as signal_module
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, BinaryIO

import pydantic

from rexec.protocol import (
    SIGNAL_NAMES,
    Cancel,
    Error,
    Exit,
    Pty,
    Resize,
    Run,
    Signal,
    Started,
    Stderr,
    StdinCredit,
    Stdout,
)

from .errors import RemoteCommandError, RexecConnectionError, describe_invalid
from .link import CommandLink
from .result import ExitStatus
from .stdin import StdinWriter
from .streams import OutputReader

if TYPE_CHECKING:
    from rexec.protocol import Message


def signal_name(sig: int | str) -> str:
    """The protocol name of a signal given as a local number, ``"SIGINT"`` or
    ``"INT"``.

    Raises:
        ValueError: a signal the protocol can't carry (see ``SIGNAL_NAMES``).
    """
    if isinstance(sig, int):
        try:
            name = signal_module.Signals(sig).name
        except ValueError:
            name = str(sig)
    else:
        name = sig.upper() if sig.upper().startswith("SIG") else "SIG" + sig.upper()
    if name not in SIGNAL_NAMES:
        raise ValueError(f"cannot send signal {sig!r}: one of {', '.join(SIGNAL_NAMES)} is needed")
    return name


async def _collect(reader: OutputReader, sink: BinaryIO | None) -> bytes | None:
    if sink is None:
        return await reader.read()
    await reader.copy_to(sink)
    return None


class RemoteProcess:
    """A command started on the server.

    Attributes:
        args: the argv list or shell string it was started with.
        pid: its process id on the server.
        stdin: a ``StdinWriter``, or None when started without stdin.
        stdout, stderr: ``OutputReader``s of its output.

    Unread output is bounded: while more than the connection's high-water mark
    of this command's output is unread, the connection stops reading its socket
    (so the server, then the command, wait). That holds back the other commands
    on the same connection too (head-of-line blocking, as on any single TCP
    stream): read both streams concurrently, or use ``communicate()``, and
    use separate connections for independent bulk transfers.
    """

    def __init__(
        self,
        connection: CommandLink,
        command_id: int,
        args: str | Sequence[str],
        *,
        stdin: bool,
        output_high_water: int,
    ) -> None:
        self._connection = connection
        self.id = command_id
        self.args = args
        self.pid: int | None = None
        #: Whether this client asked the server to end the command
        #: (``cancel``): a status that says ``cancelled`` without it means the
        #: server ended it on its own, shutting down.
        self.cancel_requested = False
        self.stdin = StdinWriter(connection, command_id) if stdin else None
        self.stdout = OutputReader(self._output_consumed, output_high_water)
        self.stderr = OutputReader(self._output_consumed, output_high_water)
        self._high_water = output_high_water
        self._started = asyncio.Event()
        self._finished = asyncio.Event()
        self._room = asyncio.Event()
        self._start_error: Exception | None = None
        self._status: ExitStatus | None = None

    # --- results ---------------------------------------------------------------

    @property
    def status(self) -> ExitStatus | None:
        """The outcome once the command has ended, else None."""
        return self._status

    @property
    def returncode(self) -> int | None:
        """``status.returncode`` once ended (see ``ExitStatus``), else None."""
        return None if self._status is None else self._status.returncode

    async def wait(self) -> ExitStatus:
        """Wait for the command to end and return how it ended. Never hangs on
        a dead connection: a lost connection gives ``connection_lost``.

        Raises:
            RemoteCommandError: the server refused the command.
        """
        await self._finished.wait()
        if self._start_error is not None:
            raise self._start_error
        assert self._status is not None
        return self._status

    async def communicate(
        self,
        input: bytes | None = None,
        *,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
    ) -> tuple[bytes | None, bytes | None]:
        """Send ``input`` (then end stdin), read all output, wait for the end.

        Input the command does not read before it exits is dropped, as
        ``subprocess`` does. Each stream is captured and returned, unless a
        binary file is given for it: its bytes are then written there as they
        arrive, and None is returned in its place.
        """
        if input and self.stdin is None:
            raise ValueError("the command was started without stdin")
        if self.stdin is not None:
            _, out, err = await asyncio.gather(
                self._feed(input), _collect(self.stdout, stdout), _collect(self.stderr, stderr)
            )
        else:
            out, err = await self._collect_both(stdout, stderr)
        await self.wait()
        return out, err

    async def _collect_both(
        self, stdout: BinaryIO | None, stderr: BinaryIO | None
    ) -> tuple[bytes | None, bytes | None]:
        """Both streams to their ends, read at once (a stream left unread
        past the high-water mark would stop the connection, and with it the
        other stream's end): stdout in this task, stderr in one task beside
        it, rather than the three tasks and the future of a ``gather``
        (the client's CPU per short command, bench/SPEED4_LATENCY.md)."""
        if self._finished.is_set():
            # All of it is in (a short command's exit often comes with its
            # ``started``): nothing more can arrive to fill either stream.
            return await _collect(self.stdout, stdout), await _collect(self.stderr, stderr)
        err_task = asyncio.ensure_future(_collect(self.stderr, stderr))
        try:
            out = await _collect(self.stdout, stdout)
        except BaseException:
            err_task.cancel()
            raise
        return out, await err_task

    async def _feed(self, data: bytes | None) -> None:
        if self.stdin is None:
            return
        try:
            if data:
                self.stdin.write(data)
                await self.stdin.drain()
            self.stdin.close()
        except (BrokenPipeError, RexecConnectionError):
            pass  # the command ended first; its status says how

    # --- control ---------------------------------------------------------------

    def send_signal(self, sig: int | str) -> None:
        """Send a signal to the command's process group on the server. Does
        nothing once the command has ended."""
        self._control(Signal(id=self.id, signal=signal_name(sig)))  # type: ignore[arg-type]

    def terminate(self) -> None:
        """Send SIGTERM."""
        self.send_signal("SIGTERM")

    def kill(self) -> None:
        """Send SIGKILL."""
        self.send_signal("SIGKILL")

    def cancel(self) -> None:
        """Ask the server to end the command (SIGTERM, grace, SIGKILL to its
        group); its status then says ``cancelled``."""
        self.cancel_requested = True
        self._control(Cancel(id=self.id))

    def resize(self, rows: int, cols: int) -> None:
        """Set the size of the command's pty (ignored without a pty)."""
        self._control(Resize(id=self.id, rows=rows, cols=cols))

    def _control(self, message: Message) -> None:
        if not self._finished.is_set():
            self._connection.send_nowait(message)

    # --- fed by the connection ---------------------------------------------

    async def wait_started(self) -> None:
        """Wait for ``started``; raise the refusal or loss that came instead."""
        await self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    @property
    def needs_room(self) -> bool:
        """True when unread output is above the high-water mark."""
        return self.stdout.buffered + self.stderr.buffered > self._high_water

    async def wait_for_room(self) -> None:
        """Wait until unread output is at most half the high-water mark."""
        while not self._has_room():
            self._room.clear()
            await self._room.wait()

    def handle(self, message: object) -> None:
        """Apply one server frame for this command id."""
        if isinstance(message, Stdout):
            self.stdout.feed_data(message.data)
        elif isinstance(message, Stderr):
            self.stderr.feed_data(message.data)
        elif isinstance(message, StdinCredit):
            if self.stdin is not None:
                self.stdin.credit_granted()
        elif isinstance(message, Started):
            self.pid = message.pid
            self._started.set()
        elif isinstance(message, Exit):
            self._finish(ExitStatus.from_exit(message), BrokenPipeError("the command has ended"))
        elif isinstance(message, Error):
            self._start_error = RemoteCommandError(message.code, message.message)
            self._finish(None, self._start_error)

    def connection_lost(self, error: RexecConnectionError) -> None:
        """End the command with a "connection lost" status (a refusal of
        ``start`` when it had not started yet)."""
        if self._finished.is_set():
            return
        if not self._started.is_set():
            self._start_error = error
        status = ExitStatus(
            connection_lost=True,
            connection_error=str(error),
            stdout_bytes=self.stdout.received,
            stderr_bytes=self.stderr.received,
            stdin_bytes=0 if self.stdin is None else self.stdin.sent,
        )
        self._finish(status, error)

    def _finish(self, status: ExitStatus | None, stdin_error: Exception) -> None:
        self._status = status
        self.stdout.feed_eof()
        self.stderr.feed_eof()
        if self.stdin is not None:
            self.stdin.command_ended(stdin_error)
        self._started.set()
        self._finished.set()
        self._room.set()

    def _has_room(self) -> bool:
        unread = self.stdout.buffered + self.stderr.buffered
        return unread <= self._high_water // 2 or self._finished.is_set()

    def _output_consumed(self) -> None:
        if self._has_room():
            self._room.set()


def run_message(
    command_id: int,
    args: str | Sequence[str],
    *,
    shell: bool,
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdin: bool,
    timeout: float | None,
    output_limit: int | None,
    pty: Pty | None,
) -> Run:
    """The ``run`` frame for these arguments, checked against the protocol."""
    if shell and not isinstance(args, str):
        raise TypeError("with shell=True, pass the command line as one string")
    command: dict[str, object] = (
        {"shell": args} if shell else {"argv": [args] if isinstance(args, str) else list(args)}
    )
    try:
        return Run(
            id=command_id,
            cwd=cwd,
            env=dict(env or {}),
            stdin=stdin,
            timeout=timeout,
            output_limit=output_limit,
            pty=pty,
            **command,  # type: ignore[arg-type]
        )
    except pydantic.ValidationError as exc:
        raise ValueError(f"cannot run this command: {describe_invalid(exc)}") from None
