"""The rexec protocol, sans I/O: bytes in, messages out; messages in, bytes out.

This package contains no networking, process or clock code at all (a test
enforces it): the server, the client and the conformance suite are thin shells
around it. See protocol.md for the normative description.

Names are loaded on first use (PEP 562): ``import rexec.protocol`` costs next
to nothing, and only what needs the message models pays for pydantic, so that
a program can import the package for a constant (the key size) and answer
``--version`` or ``--help`` without building a validator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._connection import PROTOCOL_MAX_BODY, PROTOCOL_MAX_HEADER, Connection, sign_auth
    from ._discovery import (
        DEFAULT_ANNOUNCE_PORT,
        MAX_PROBE_SIZE,
        Announcement,
        decode_answer,
        decode_probe,
        encode_answer,
        encode_probe,
    )
    from ._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
    from ._framing import HEADER_LENGTH, FrameDecoder, decode_header, encode_frame, encode_header
    from ._handshake import (
        BINDING_SIZE,
        KEY_SIZE,
        MAC_SIZE,
        NONCE_SIZE,
        PROTOCOL_VERSION,
        SUPPORTED_FEATURES,
        SUPPORTED_VERSIONS,
        Transcript,
        choose_version,
        macs_match,
    )
    from ._limits import MAX_SAFE_INTEGER, Limits
    from ._messages import (
        MESSAGE_ADAPTER,
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
        MessageBase,
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

#: The private module that defines each public name.
_MODULES: dict[str, tuple[str, ...]] = {
    "_connection": ("PROTOCOL_MAX_BODY", "PROTOCOL_MAX_HEADER", "Connection", "sign_auth"),
    "_discovery": (
        "DEFAULT_ANNOUNCE_PORT",
        "MAX_PROBE_SIZE",
        "Announcement",
        "decode_answer",
        "decode_probe",
        "encode_answer",
        "encode_probe",
    ),
    "_errors": ("ErrorCode", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"),
    "_framing": ("HEADER_LENGTH", "FrameDecoder", "decode_header", "encode_frame", "encode_header"),
    "_handshake": (
        "BINDING_SIZE",
        "KEY_SIZE",
        "MAC_SIZE",
        "NONCE_SIZE",
        "PROTOCOL_VERSION",
        "SUPPORTED_FEATURES",
        "SUPPORTED_VERSIONS",
        "Transcript",
        "choose_version",
        "macs_match",
    ),
    "_limits": ("MAX_SAFE_INTEGER", "Limits"),
    "_messages": (
        "MESSAGE_ADAPTER",
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
        "MessageBase",
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
    ),
    "_state": ("ConnectionState", "Role"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "BINDING_SIZE", "DEFAULT_ANNOUNCE_PORT", "HEADER_LENGTH", "KEY_SIZE", "MAC_SIZE",
    "MAX_PROBE_SIZE", "MAX_SAFE_INTEGER", "MESSAGE_ADAPTER", "NONCE_SIZE", "PROTOCOL_MAX_BODY",
    "PROTOCOL_MAX_HEADER", "PROTOCOL_VERSION", "SIGNAL_NAMES", "SUPPORTED_FEATURES",
    "SUPPORTED_VERSIONS", "Announcement", "Auth", "AuthOk", "Cancel", "Connection",
    "ConnectionState", "Done", "Error", "ErrorCode", "Exit", "File", "FrameDecoder", "Get",
    "Hello", "Limits", "LocalProtocolError", "Message", "MessageBase", "Ping", "Pong",
    "ProtocolError", "Pty", "Put", "RemoteProtocolError", "Resize", "Role", "Run", "ServerLimits",
    "Signal", "Started", "Stderr", "Stdin", "StdinCredit", "StdinEof", "Stdout", "Transcript",
    "choose_version", "decode_answer", "decode_header", "decode_probe", "encode_answer",
    "encode_frame", "encode_header", "encode_probe", "macs_match", "sign_auth",
]  # fmt: skip


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Only our own submodules, by the names in the table above.
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
