"""Protocol errors: whose fault it is, and which code goes on the wire.

``RemoteProtocolError`` means the peer broke the protocol: the right answer is
an ``error`` frame with ``code`` (then closing when ``fatal``).
``LocalProtocolError`` means our own code tried to send something illegal: a
bug on this side, never the peer's, so it is never reported to the peer as its
fault.
"""

from __future__ import annotations

import enum


class ErrorCode(str, enum.Enum):
    """Stable error codes carried by ``error`` frames (see protocol.md, "Errors")."""

    # Framing and header: always fatal, the byte stream can't be trusted after them.
    FRAME_BAD_LENGTH = "frame.bad_length"
    FRAME_TOO_LARGE = "frame.too_large"
    FRAME_BODY_TOO_LARGE = "frame.body_too_large"
    FRAME_TIMEOUT = "frame.timeout"
    FRAME_TRUNCATED = "frame.truncated"  # for logs: nobody is left to send it to
    HEADER_BAD_JSON = "header.bad_json"
    HEADER_NOT_OBJECT = "header.not_object"
    HEADER_UNKNOWN_TYPE = "header.unknown_type"
    HEADER_INVALID = "header.invalid"
    # Sequencing: fatal.
    PROTOCOL_UNEXPECTED = "protocol.unexpected"
    VERSION_UNSUPPORTED = "version.unsupported"
    FEATURE_UNSUPPORTED = "feature.unsupported"
    TLS_BINDING_UNAVAILABLE = "tls.binding_unavailable"
    AUTH_FAILED = "auth.failed"
    AUTH_TIMEOUT = "auth.timeout"
    IDLE_TIMEOUT = "idle.timeout"
    COMMAND_BAD_ID = "command.bad_id"
    FLOW_WINDOW_EXCEEDED = "flow.window_exceeded"
    # Command-scoped: the command never started, the connection carries on.
    BUSY = "busy"
    SPAWN_NOT_FOUND = "spawn.not_found"
    SPAWN_PERMISSION_DENIED = "spawn.permission_denied"
    SPAWN_FAILED = "spawn.failed"
    CWD_INVALID = "cwd.invalid"
    ENV_FORBIDDEN = "env.forbidden"
    COMMAND_DENIED = "command.denied"
    PTY_FAILED = "pty.failed"
    AUDIT_UNAVAILABLE = "audit.unavailable"
    # Transfer-scoped (put, get): the transfer ended without a result.
    FILE_NOT_FOUND = "file.not_found"
    FILE_PERMISSION_DENIED = "file.permission_denied"
    FILE_IS_DIRECTORY = "file.is_directory"
    FILE_SIZE_MISMATCH = "file.size_mismatch"
    FILE_DIGEST_MISMATCH = "file.digest_mismatch"
    FILE_CANCELLED = "file.cancelled"
    FILE_FAILED = "file.failed"
    # Either scope.
    SHUTTING_DOWN = "server.shutting_down"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """Base of every error the protocol core raises.

    Attributes:
        code: the ``ErrorCode`` that describes the failure on the wire.
        message: a short human text; it never echoes the offending input.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol; the connection must be closed after
    sending an ``error`` frame with this code (all such violations are fatal)."""


class LocalProtocolError(ProtocolError):
    """This side tried to send a message that is illegal in the current state.

    It is never the peer's fault: a bug in the caller, or a race the caller
    handles (a ``cancel`` for a command whose end has just arrived). Nothing is
    sent and the connection's state is unchanged."""


__all__ = ["ErrorCode", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]
