"""The client side of the handshake (protocol.md 3): hello → auth → auth_ok.

Authentication is mutual: after the server accepts our proof we check its
proof, so a peer that does not hold the key is never sent a command. Both
proofs cover the whole transcript (both frames as they travelled) and the
connection's binding (``rexec.binding``), computed by the protocol core: a man
in the middle who alters the hello, terminates TLS or relays a plaintext
connection is caught here.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, TypeVar

from rexec.binding import BindingUnavailable, connection_binding
from rexec.protocol import (
    NONCE_SIZE,
    SUPPORTED_VERSIONS,
    AuthOk,
    Connection,
    Error,
    ErrorCode,
    Hello,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    choose_version,
    macs_match,
)

from .chunk_reader import RECV_SIZE
from .errors import AuthenticationError, ProtocolViolation, RexecConnectionError, VersionMismatch

if TYPE_CHECKING:
    pass

_T = TypeVar("_T")

#: Bytes asked of the reader per read (see ``ChunkReader``).
READ_SIZE = RECV_SIZE


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    protocol: Connection,
    key: bytes,
    peer: str,
) -> Hello:
    """Authenticate both ways on a fresh connection; return the server's hello.

    Raises:
        VersionMismatch: the server speaks no version we speak.
        AuthenticationError: the server refused our key, or failed to prove
            that it holds the key.
        ProtocolViolation: the peer does not speak the protocol.
        RexecConnectionError: the server refused or closed the connection, or
            the TLS session can't be bound.
    """
    try:
        binding = connection_binding(writer, server=False)
    except BindingUnavailable as exc:
        raise RexecConnectionError(
            f"cannot authenticate over TLS to {peer}: {exc}; refusing an unbound connection",
            ErrorCode.TLS_BINDING_UNAVAILABLE.value,
        ) from None
    hello = await _receive(reader, writer, protocol, Hello, peer)
    if choose_version(hello.versions) is None:
        raise VersionMismatch(
            f"{peer} speaks protocol version(s) {_listed(hello.versions)}; "
            f"this client speaks {_listed(SUPPORTED_VERSIONS)}",
            ErrorCode.VERSION_UNSUPPORTED.value,
        )
    auth = protocol.sign_auth(key, nonce=secrets.token_hex(NONCE_SIZE), binding=binding)
    try:
        writer.write(protocol.send(auth))
    except LocalProtocolError as exc:  # hello's limits can't carry our auth frame
        raise ProtocolViolation(
            f"{peer} announced limits too small to authenticate (max_header "
            f"{hello.limits.max_header}, max_body {hello.limits.max_body}): "
            "not a rexec server, or something altered the handshake",
            exc.code.value,
        ) from None
    auth_ok = await _receive(reader, writer, protocol, AuthOk, peer)
    expected = protocol.transcript(binding).server_mac(key, auth.mac)
    if not macs_match(expected, auth_ok.mac):
        raise AuthenticationError(
            f"{peer} accepted the key but could not prove it holds it: "
            "it is not the server you meant to reach",
            ErrorCode.AUTH_FAILED.value,
        )
    return hello


async def _receive(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    protocol: Connection,
    expected: type[_T],
    peer: str,
) -> _T:
    try:
        while (message := protocol.next_event()) is None:
            data = await reader.read(READ_SIZE)
            protocol.receive_data(data)
            if not data:
                raise RexecConnectionError(f"{peer} closed the connection during the handshake")
    except RemoteProtocolError as exc:
        if exc.code is not ErrorCode.FRAME_TRUNCATED:
            writer.write(fatal_error_frame(protocol, exc))
        raise ProtocolViolation(
            f"{peer} does not speak the rexec protocol ({exc.code.value}: {exc.message})",
            exc.code.value,
        ) from None
    if isinstance(message, Error):
        raise _refusal(message, peer)
    assert isinstance(message, expected)  # the protocol state enforces the order
    return message


def _refusal(error: Error, peer: str) -> RexecConnectionError:
    """The exception for an ``error`` frame received during the handshake."""
    if error.code == ErrorCode.AUTH_FAILED.value:
        # The macs cover the whole handshake: a wrong key, or a man in the
        # middle who changed it, look the same from here.
        return AuthenticationError(
            f"{peer} refused the key (auth.failed): the key file does not match the server's, "
            "or something between you and the server altered the handshake or relayed it"
            " (a connection without TLS is bound to its two ends: through a tunnel, use TLS)",
            error.code,
        )
    if error.code == ErrorCode.VERSION_UNSUPPORTED.value:
        return VersionMismatch(f"{peer}: {error.message} ({error.code})", error.code)
    return RexecConnectionError(
        f"{peer} refused the connection: {error.message} ({error.code})", error.code
    )


def fatal_error_frame(protocol: Connection, exc: RemoteProtocolError) -> bytes:
    """The bytes of the fatal ``error`` frame answering ``exc`` (b"" when the
    connection state no longer allows sending one)."""
    try:
        return protocol.send(Error(code=exc.code.value, message=exc.message[:200], fatal=True))
    except ProtocolError:
        return b""


def _listed(versions: tuple[int, ...] | list[int]) -> str:
    return ", ".join(str(v) for v in versions)
