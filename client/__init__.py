"""The rexec client: run commands on a ``rexecd`` server, like ``subprocess``.

    >>> import rexec_client
    >>> result = rexec_client.run(["uname", "-a"], host="127.0.0.1")
    >>> result.returncode, result.stdout

``run`` (synchronous) and ``run_async`` run one command per connection;
``connect()`` gives a ``ClientConnection`` on which many commands can run at
once, each a ``RemoteProcess``. The ``rexec`` command-line program is
``rexec_client.cli``.
"""

from rexec.keyfile import KeyFileError

from .address import DEFAULT_PORT, Address, parse_address
from .api import resolve_key, run, run_async
from .connection import ClientConnection, connect
from .errors import (
    AuthenticationError,
    ProtocolViolation,
    RemoteCommandError,
    RexecConnectionError,
    RexecError,
    VersionMismatch,
)
from .process import RemoteProcess
from .result import CalledProcessError, CompletedProcess, ExitStatus, TimeoutExpired
from .stdin import StdinWriter
from .streams import OutputReader
from .tls import client_ssl_context

__all__ = [
    "DEFAULT_PORT",
    "Address",
    "AuthenticationError",
    "CalledProcessError",
    "ClientConnection",
    "CompletedProcess",
    "ExitStatus",
    "KeyFileError",
    "OutputReader",
    "ProtocolViolation",
    "RemoteCommandError",
    "RemoteProcess",
    "RexecConnectionError",
    "RexecError",
    "StdinWriter",
    "TimeoutExpired",
    "VersionMismatch",
    "client_ssl_context",
    "connect",
    "parse_address",
    "resolve_key",
    "run",
    "run_async",
]
