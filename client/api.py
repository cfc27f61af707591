"""``run``: one command on a server, like ``subprocess.run``.

``run_async`` connects, runs the command and closes the connection; ``run`` is
the same call for code without an event loop. To run several commands on one
connection, use ``connect()`` and ``ClientConnection.run``/``start``.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

from rexec import eventloop
from rexec.keyfile import default_key_path, load_key

from .dial import DEFAULT_CONNECT_TIMEOUT, connect
from .result import CompletedProcess


def resolve_key(key: bytes | None = None, key_file: str | Path | None = None) -> bytes:
    """The key to use: ``key`` itself, else the one in ``key_file``, else the
    one in the default key file (``rexec.keyfile.default_key_path()``).

    Raises:
        ValueError: both were given.
        rexec.keyfile.KeyFileError: the key file is missing, unsafe or bad.
    """
    if key is not None and key_file is not None:
        raise ValueError("give key or key_file, not both")
    if key is not None:
        return key
    return load_key(Path(key_file) if key_file is not None else default_key_path())


class RunOptions(TypedDict, total=False):
    """What ``run_async`` and ``run`` pass on to ``ClientConnection.run``
    (which documents them): the command's input, limits and output."""

    input: bytes | None
    timeout: float | None
    check: bool
    cwd: str | None
    env: Mapping[str, str] | None
    shell: bool
    capture_output: bool
    output_limit: int | None


async def run_async(
    args: str | Sequence[str],
    *,
    host: str,
    port: int | None = None,
    key: bytes | None = None,
    key_file: str | Path | None = None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **options: Unpack[RunOptions],
) -> CompletedProcess:
    """Run one command on ``host:port`` and return its ``CompletedProcess``.

    ``host`` is written as on the command line and may carry the port
    (``"server:7000"``, ``"[::1]:7000"``); ``port`` defaults to that one, else
    7420.

    ``timeout`` is enforced by the server, which ends the command's whole
    process group; the result then says ``timed_out`` (returncode 124).
    See ``ClientConnection.run`` for the other ``options`` (``RunOptions``)
    and ``connect`` for the connection ones.

    Raises:
        CalledProcessError: with ``check``, a returncode other than 0.
        RemoteCommandError: the server refused the command.
        RexecConnectionError: connecting or authenticating failed.
        rexec.keyfile.KeyFileError: the key file can't be used.
        ValueError: a malformed address.
    """
    # A misspelt option fails before connecting, as a misspelt argument does.
    unknown = sorted(options.keys() - RunOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"run_async() got an unexpected keyword argument {unknown[0]!r}")
    connection = await connect(
        host,
        port,
        resolve_key(key, key_file),
        ssl=ssl,
        server_hostname=server_hostname,
        connect_timeout=connect_timeout,
    )
    async with connection:
        return await connection.run(args, **options)


def run(args: str | Sequence[str], **arguments: Any) -> CompletedProcess:
    """``run_async`` for synchronous code, with the same arguments (it runs
    its own event loop, so it can't be called from a coroutine: await
    ``run_async`` there)."""
    return eventloop.run(run_async(args, **arguments))


# What help() and inspect.signature show for ``run``: run_async's arguments.
run.__wrapped__ = run_async  # type: ignore[attr-defined]
