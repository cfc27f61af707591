"""``ClientConnection``: one authenticated connection to a rexec server.

One reader task feeds received bytes to the sans-I/O ``rexec.protocol``
``Connection`` and hands each frame to the process of its command id; it
answers ``ping`` with ``pong``. There is one write path: every frame goes
through ``Connection.send`` (which checks it) and then the transport, so frames
never interleave. A fatal ``error``, a protocol violation, EOF, a failed
keepalive or ``close()`` end the connection, and every command still running
ends with a "connection lost" status: nothing waits forever.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self

from rexec.protocol import (
    PROTOCOL_MAX_BODY,
    Connection,
    Done,
    Error,
    ErrorCode,
    Exit,
    Get,
    Hello,
    LocalProtocolError,
    Ping,
    Pong,
    Pty,
    Put,
    RemoteProtocolError,
    Run,
    ServerLimits,
)

from ._handshake import READ_SIZE, fatal_error_frame
from .chunk_reader import BODY_APART
from .errors import (
    CannotSend,
    ProtocolViolation,
    RexecConnectionError,
)
from .failures import describe_os_error
from .keepalive import Keepalive
from .link import CommandHandler
from .process import RemoteProcess, run_message
from .result import CompletedProcess

if TYPE_CHECKING:
    from rexec.protocol import Message

#: Unread output of one command above which the connection stops reading its
#: socket: two full frames, so a reader keeps up without stalling the sender.
DEFAULT_OUTPUT_HIGH_WATER = 2 * PROTOCOL_MAX_BODY
#: Seconds ``close()`` waits for the transport to finish closing.
_CLOSE_TIMEOUT = 2.0


class ClientConnection:
    """An authenticated connection; made by ``connect()``.

    Commands get increasing ids; several may run at once. Use it as an async
    context manager, or call ``close()``.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: Connection,
        hello: Hello,
        *,
        peer: str,
        keepalive: float | None,
        keepalive_timeout: float,
        output_high_water: int,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._protocol = protocol
        self._hello = hello
        self.peer = peer
        self._output_high_water = output_high_water
        self._processes: dict[int, CommandHandler] = {}
        self._error: RexecConnectionError | None = None
        self._ended = asyncio.Event()
        #: The server's first notice (see _dispatch).
        self.notice: asyncio.Future[Error] = asyncio.get_running_loop().create_future()
        self._reading_paused = False
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"rexec-reader-{peer}")
        self._keepalive = (
            Keepalive(
                keepalive,
                keepalive_timeout,
                send=self.send_nowait,
                reading_paused=lambda: self._reading_paused,
                dead=lambda why: self._fail(self._lost(why)),
            )
            if keepalive
            else None
        )

    # --- information -----------------------------------------------------------

    @property
    def server_name(self) -> str:
        """The name the server gave in its hello."""
        return self._hello.server

    @property
    def server_limits(self) -> ServerLimits:
        """The limits the server announced."""
        return self._hello.limits

    @property
    def max_body(self) -> int:
        """The largest frame body this connection may send."""
        return min(self._hello.limits.max_body, PROTOCOL_MAX_BODY)

    @property
    def is_closed(self) -> bool:
        return self._error is not None

    async def wait_ended(self) -> RexecConnectionError:
        """Wait until the connection has ended (lost, or closed by ``close()``)
        and return why: lets an idle client notice a dead server at once."""
        await self._ended.wait()
        assert self._error is not None
        return self._error

    def stdin_credit(self, command_id: int) -> int:
        """Stdin bytes command ``command_id`` may be sent now."""
        return self._protocol.stdin_credit(command_id)

    # --- commands --------------------------------------------------------------

    async def start(
        self,
        args: str | Sequence[str],
        *,
        shell: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        timeout: float | None = None,
        output_limit: int | None = None,
        pty: Pty | None = None,
    ) -> RemoteProcess:
        """Start a command and wait until the server reports it started.

        Args:
            args: with ``shell`` false, the argv (a single string is the
                program name, as in ``subprocess``); with ``shell`` true, one
                string run by ``/bin/sh -c`` on the server.
            cwd: working directory on the server (default: the server's).
            env: variables added to the server's base environment.
            stdin: give the command a ``stdin`` writer; otherwise its standard
                input is ``/dev/null``.
            timeout: seconds after which the server ends the command (its
                status then says ``timed_out``).
            output_limit: bytes of output after which the server ends it.
            pty: run it on a pseudo-terminal of this size.

        Raises:
            RemoteCommandError: the server refused it (``spawn.not_found``,
                ``cwd.invalid``, ``env.forbidden``, ``busy`` …).
            RexecConnectionError: the connection is or got lost.
            ValueError, TypeError: arguments the protocol can't carry.
        """
        run = run_message(
            self._protocol.last_command_id + 1,
            args,
            shell=shell,
            cwd=cwd,
            env=env,
            stdin=stdin,
            timeout=timeout,
            output_limit=output_limit,
            pty=pty,
        )
        process = RemoteProcess(
            self, run.id, args, stdin=stdin, output_high_water=self._output_high_water
        )
        await self._open(run, process)
        await process.wait_started()
        return process

    async def run(
        self,
        args: str | Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        shell: bool = False,
        capture_output: bool = True,
        output_limit: int | None = None,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
    ) -> CompletedProcess:
        """Run a command to its end, like ``subprocess.run``.

        ``input`` is sent as its stdin (without ``input`` its stdin is
        ``/dev/null``). With ``capture_output`` the output is returned;
        otherwise it is written, as it arrives, to ``stdout``/``stderr``
        (binary files; default: this process's). With ``check``, a non-zero
        returncode raises ``CalledProcessError`` (``TimeoutExpired`` when the
        timeout expired). A connection lost during the command gives
        ``connection_lost`` and returncode 255.

        Raises:
            RemoteCommandError, RexecConnectionError: as ``start``.
        """
        process = await self.start(
            args,
            shell=shell,
            cwd=cwd,
            env=env,
            stdin=input is not None,
            timeout=timeout,
            output_limit=output_limit,
        )
        sinks: dict[str, BinaryIO] = {}
        if not capture_output:
            sinks = {"stdout": stdout or sys.stdout.buffer, "stderr": stderr or sys.stderr.buffer}
        out, err = await process.communicate(input, **sinks)
        result = CompletedProcess.from_status(args, await process.wait(), out, err)
        if check:
            result.check_returncode()
        return result

    def next_command_id(self) -> int:
        """The id the next command opened on this connection will take."""
        return self._protocol.last_command_id + 1

    async def open_transfer(self, message: Put | Get, handler: CommandHandler) -> None:
        """Send a ``put`` or ``get`` (whose id is ``next_command_id()``) and
        route the frames of its id to ``handler`` until its terminal frame
        (``done`` or ``error``) or the loss of the connection. Used by
        ``rexec_client.transfer``.

        Raises:
            RexecConnectionError: the connection is or got lost.
        """
        await self._open(message, handler)

    async def _open(self, message: Run | Put | Get, handler: CommandHandler) -> None:
        """Send the command ``message`` with its frames routed to ``handler``:
        registered before sending (its first frame may come while ``send``
        waits), and again unregistered when the send fails."""
        self._processes[message.id] = handler
        try:
            await self.send(message)
        except BaseException:
            self._processes.pop(message.id, None)
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
        apart = message.data_size >= BODY_APART  # a large body isn't copied into the frame
        try:
            frame = (self._protocol.send_header if apart else self._protocol.send)(message)
        except LocalProtocolError as exc:
            raise CannotSend(
                f"{self.peer}: cannot send {message.type}: {exc.message}", exc.code.value
            ) from None
        self._writer.write(frame)
        if apart:
            self._writer.write(message.data)  # type: ignore[attr-defined]

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
        await asyncio.gather(*self._tasks(), return_exceptions=True)
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

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [self._reader_task, *([self._keepalive.task] if self._keepalive else [])]

    def _lost(self, why: str, code: str | None = None) -> RexecConnectionError:
        return RexecConnectionError(f"connection to {self.peer} lost: {why}", code)

    def _fail(self, error: RexecConnectionError) -> RexecConnectionError:
        """End the connection with ``error`` (the first reason wins): every
        running command ends with it, tasks stop, the transport closes."""
        if self._error is None:
            self._error = error
            self._ended.set()
            for process in self._processes.values():
                process.connection_lost(error)
            self._processes.clear()
            self._writer.close()
            for task in self._tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        return self._error

    # --- the reader --------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                # First the frames already buffered (some came with the handshake).
                while (message := self._protocol.next_event()) is not None:
                    await self._dispatch(message)
                data = await self._reader.read(READ_SIZE)
                self._protocol.receive_data(data)
                if not data:
                    raise self._lost("the server closed the connection")
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
            if self._keepalive is not None:
                self._keepalive.answered(message.seq)
            return
        if isinstance(message, Error) and message.fatal:
            raise self._lost(f"{message.message} ({message.code})", message.code)
        command_id: int | None = getattr(message, "id", None)
        if command_id is None:
            assert isinstance(message, Error)  # the protocol state allows nothing else
            # A non-fatal error about no command, a notice (server.shutting_down as it starts to).
            if not self.notice.done():
                self.notice.set_result(message)
            return
        process = self._processes[command_id]
        process.handle(message)
        if isinstance(message, (Exit, Done, Error)):
            del self._processes[command_id]
        elif process.needs_room:
            # Stop reading the socket until the user reads this command's
            # output: TCP backpressure then reaches the server.
            self._reading_paused = True
            try:
                await process.wait_for_room()
            finally:
                self._reading_paused = False
