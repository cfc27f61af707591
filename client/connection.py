"""``connect()`` and ``ClientConnection``: one authenticated connection to a
rexec server, on which commands run (``start``, ``run``) and files travel
(``open_transfer``, for ``rexec_client.transfer``).

``connect`` opens the socket (TLS when asked) and runs the handshake
(_handshake.py) within one timeout. The frames themselves, the reader task,
the keepalive and the end of the connection are ``Wire``'s (wire.py), which
``ClientConnection`` extends with the commands.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import sys
from collections.abc import Mapping, Sequence
from typing import BinaryIO

import pydantic

from rexec.protocol import (
    KEY_SIZE,
    PROTOCOL_MAX_BODY,
    Connection,
    Get,
    Hello,
    Pty,
    Put,
    Role,
    Run,
    ServerLimits,
)

from ._handshake import READ_SIZE, handshake
from .address import library_address
from .errors import ConnectTimeout, RexecConnectionError, describe_invalid
from .process import RemoteProcess
from .result import CompletedProcess
from .wire import CommandHandler, Wire, describe_os_error

#: Seconds for TCP connect, TLS and the rexec handshake together.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Unread output of one command above which the connection stops reading its
#: socket: two full frames, so a reader keeps up without stalling the sender.
DEFAULT_OUTPUT_HIGH_WATER = 2 * PROTOCOL_MAX_BODY
#: Seconds a keepalive ping may go unanswered before the connection is dead.
DEFAULT_KEEPALIVE_TIMEOUT = 10.0


async def connect(
    host: str,
    port: int | None = None,
    key: bytes = b"",
    *,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    keepalive: float | None = None,
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    output_high_water: int = DEFAULT_OUTPUT_HIGH_WATER,
) -> ClientConnection:
    """Connect to a rexec server and authenticate.

    Args:
        host, port: the server. ``host`` is written as on the command line:
            a name or an IP address, optionally with its port (``"server:7000"``,
            ``"[::1]:7000"``, or bare ``"::1"``); ``port`` defaults to the one in
            ``host``, else 7420.
        key: the shared 32-byte key.
        ssl: a client ``SSLContext`` to speak TLS; None for plain TCP.
        server_hostname: the name to check the server certificate against
            (default: ``host``); only with ``ssl``.
        connect_timeout: bound on TCP connect, TLS and the handshake together.
        keepalive: when set, send a ``ping`` every this many seconds and
            declare the connection lost if no ``pong`` comes within
            ``keepalive_timeout``.
        output_high_water: unread output bytes of one command above which the
            connection stops reading from the server (see ``RemoteProcess``).

    Raises:
        ValueError: the key is not 32 bytes, or the address is malformed.
        AuthenticationError, VersionMismatch, ProtocolViolation: see
            ``rexec_client.errors``.
        RexecConnectionError: the connection could not be made (refused,
            unreachable, TLS failure, timeout).
    """
    if len(key) != KEY_SIZE:
        raise ValueError(f"the key must be {KEY_SIZE} bytes, not {len(key)}")
    address = library_address(host, port)
    peer = str(address)
    tls = {"ssl": ssl, "server_hostname": server_hostname} if ssl is not None else {}
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(  # type: ignore[arg-type]
                address.host, address.port, limit=READ_SIZE, **tls
            )
            protocol = Connection(Role.CLIENT)
            hello = await handshake(reader, writer, protocol, key, peer)
    except BaseException as exc:
        if writer is not None:
            writer.transport.abort()
        if isinstance(exc, RexecConnectionError):
            raise  # already says what happened (it is an OSError too)
        if isinstance(exc, TimeoutError):
            raise ConnectTimeout(f"no answer from {peer} within {connect_timeout:g} s") from None
        if isinstance(exc, OSError):
            # Chained: the cause (a TLS verification failure…) is for
            # callers that want to say more than the message does.
            raise RexecConnectionError(
                f"cannot connect to {peer}: {describe_os_error(exc)}"
            ) from exc
        raise
    return ClientConnection(
        reader,
        writer,
        protocol,
        hello,
        peer=peer,
        keepalive=keepalive,
        keepalive_timeout=keepalive_timeout,
        output_high_water=output_high_water,
    )


class ClientConnection(Wire):
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
        super().__init__(
            reader, writer, protocol, peer=peer, keepalive=keepalive,
            keepalive_timeout=keepalive_timeout,
        )  # fmt: skip
        self._hello = hello
        self._output_high_water = output_high_water

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
        run = _run_message(
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
        await self.open_command(run, process)
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
        if capture_output:
            out, err = await process.communicate(input)
        else:
            out, err = await process.communicate(
                input,
                stdout=stdout or sys.stdout.buffer,
                stderr=stderr or sys.stderr.buffer,
            )
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
        await self.open_command(message, handler)


def _run_message(
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
