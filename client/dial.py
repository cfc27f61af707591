"""``connect()``: open an authenticated connection to a rexec server — TCP,
TLS when asked, then the handshake (``_handshake``), all within one timeout —
and hand it to a ``ClientConnection``. A failure is one ``RexecConnectionError``
that says what happened, in words (``failures.describe_os_error``)."""

from __future__ import annotations

import asyncio
import ssl as ssl_module

from rexec.protocol import KEY_SIZE, Connection, Role

from ._handshake import handshake
from .address import library_address
from .chunk_reader import HOLD_LIMIT, open_connection
from .connection import DEFAULT_OUTPUT_HIGH_WATER, ClientConnection
from .errors import ConnectTimeout, RexecConnectionError
from .failures import describe_os_error

#: Seconds for TCP connect, TLS and the rexec handshake together.
DEFAULT_CONNECT_TIMEOUT = 10.0
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
            reader, writer = await open_connection(
                address.host, address.port, limit=HOLD_LIMIT, **tls
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
