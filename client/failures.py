"""One line, in words, for a socket, name resolution or TLS failure, as the
CLI prints it and ``RexecConnectionError`` carries it: without Python's
decorations. Its own module because it needs ``ssl``, which only the
connection code loads."""

from __future__ import annotations

import os
import socket
import ssl


def describe_os_error(exc: OSError) -> str:
    """One line for a socket, name resolution or TLS failure, without
    Python's decorations."""
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return "no such host (the name does not resolve)"
        return f"cannot resolve the host name ({(exc.strerror or str(exc)).lower()})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        return f"TLS failed: {_TLS_REASONS.get(reason, reason)}"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, ConnectionResetError):
        # asyncio's own "Connection lost" (no errno): a write found the
        # transport already closed by the peer. Said as the reader says it, so
        # that one cause reads the same whichever side noticed first.
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


#: What the TLS failures a user meets most often mean, by OpenSSL's reason.
_TLS_REASONS = {
    "WRONG_VERSION_NUMBER": "the server does not speak TLS (WRONG_VERSION_NUMBER)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused our client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the CA of our client certificate",
}
