"""The rexec client: run commands on a ``rexecd`` server, like ``subprocess``.

    >>> import rexec_client
    >>> result = rexec_client.run(["uname", "-a"], host="127.0.0.1")
    >>> result.returncode, result.stdout

``run`` (synchronous) and ``run_async`` run one command per connection;
``connect()`` gives a ``ClientConnection`` on which many commands can run at
once, each a ``RemoteProcess``. ``rexec_client.batch`` runs many commands on
many servers, ``rexec_client.transfer`` copies files. The ``rexec``
command-line program is ``rexec_client.cli``.

Names and subpackages are imported on first use (PEP 562), so that a program
pays only for what it uses (``rexec keygen`` never loads asyncio, ssl or the
connection code), and ``import rexec_client`` then
``rexec_client.batch.run_batch_sync(...)`` works.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rexec.keyfile import KeyFileError

    from . import batch, transfer
    from .address import DEFAULT_PORT, Address, parse_address
    from .api import resolve_key, run, run_async
    from .connection import ClientConnection
    from .dial import connect
    from .errors import (
        AuthenticationError,
        CannotSend,
        ConnectTimeout,
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

#: Where each public name is defined.
_ORIGINS = {
    "KeyFileError": "rexec.keyfile",
    "DEFAULT_PORT": ".address",
    "Address": ".address",
    "parse_address": ".address",
    "resolve_key": ".api",
    "run": ".api",
    "run_async": ".api",
    "ClientConnection": ".connection",
    "connect": ".dial",
    "AuthenticationError": ".errors",
    "CannotSend": ".errors",
    "ConnectTimeout": ".errors",
    "ProtocolViolation": ".errors",
    "RemoteCommandError": ".errors",
    "RexecConnectionError": ".errors",
    "RexecError": ".errors",
    "VersionMismatch": ".errors",
    "RemoteProcess": ".process",
    "CalledProcessError": ".result",
    "CompletedProcess": ".result",
    "ExitStatus": ".result",
    "TimeoutExpired": ".result",
    "StdinWriter": ".stdin",
    "OutputReader": ".streams",
    "client_ssl_context": ".tls",
}
#: Subpackages reachable as attributes after ``import rexec_client``.
_SUBPACKAGES = ("batch", "transfer")

__all__ = [
    "DEFAULT_PORT",
    "Address",
    "AuthenticationError",
    "CalledProcessError",
    "CannotSend",
    "ClientConnection",
    "CompletedProcess",
    "ConnectTimeout",
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
    "batch",
    "client_ssl_context",
    "connect",
    "parse_address",
    "resolve_key",
    "run",
    "run_async",
    "transfer",
]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    origin = _ORIGINS.get(name)
    if origin is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(origin, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
