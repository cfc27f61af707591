"""The rexec protocol, sans I/O: bytes in, messages out; messages in, bytes out.

This package contains no networking, process or clock code at all (a test
enforces it): the server, the client and the conformance suite are thin shells
around it. See protocol.md for the normative description.
"""

from ._auth import KEY_SIZE, NONCE_SIZE, client_proof, proofs_match, server_proof
from ._connection import (
    PROTOCOL_MAX_BODY,
    PROTOCOL_MAX_HEADER,
    SUPPORTED_VERSIONS,
    Connection,
)
from ._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from ._framing import HEADER_LENGTH, FrameDecoder, decode_header, encode_frame
from ._limits import Limits
from ._messages import (
    MESSAGE_ADAPTER,
    PROTOCOL_VERSION,
    SIGNAL_NAMES,
    Auth,
    AuthOk,
    Cancel,
    Done,
    Error,
    Exit,
    File,
    Get,
    Hello,
    Message,
    Ping,
    Pong,
    Pty,
    Put,
    Resize,
    Run,
    ServerLimits,
    Signal,
    Started,
    Stderr,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
)
from ._state import ConnectionState, Role

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "client_proof",
    "proofs_match",
    "server_proof",
    "PROTOCOL_MAX_BODY",
    "PROTOCOL_MAX_HEADER",
    "SUPPORTED_VERSIONS",
    "Connection",
    "ErrorCode",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "HEADER_LENGTH",
    "FrameDecoder",
    "decode_header",
    "encode_frame",
    "Limits",
    "MESSAGE_ADAPTER",
    "PROTOCOL_VERSION",
    "SIGNAL_NAMES",
    "Auth",
    "AuthOk",
    "Cancel",
    "Done",
    "Error",
    "Exit",
    "File",
    "Get",
    "Hello",
    "Message",
    "Ping",
    "Pong",
    "Pty",
    "Put",
    "Resize",
    "Run",
    "ServerLimits",
    "Signal",
    "Started",
    "Stderr",
    "Stdin",
    "StdinCredit",
    "StdinEof",
    "Stdout",
    "ConnectionState",
    "Role",
]
