"""Operational settings of ``rexecd``, as resolved from its command line."""

from __future__ import annotations

import dataclasses
import ssl

from rexec.protocol import Limits
from rexec.runner import Graces

DEFAULT_PORT = 7420


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything a running server needs, already validated.

    Attributes:
        key: the shared 32-byte authentication key.
        server_name: the name announced in ``hello`` and bound into the proofs.
        limits: per-connection protocol limits (announced to clients).
        max_total_commands: running commands across all connections.
        auth_timeout: seconds a connection has to authenticate.
        shutdown_grace: seconds running commands get to finish on SIGTERM.
        graces: kill and drain graces of each command.
        ssl: the TLS context, or None for plaintext (loopback only).
    """

    key: bytes
    server_name: str
    limits: Limits = Limits()
    max_total_commands: int = 256
    auth_timeout: float = 10.0
    shutdown_grace: float = 10.0
    graces: Graces = Graces()
    ssl: ssl.SSLContext | None = None
