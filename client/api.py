"""``run``: one command on a server, like ``subprocess.run``.

``run_async`` connects, runs the command and closes the connection; ``run`` is
the same call for code without an event loop. To run several commands on one
connection, use ``connect()`` and ``ClientConnection.run``/``start``.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Mapping, Sequence
from pathlib import Path

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


async def run_async(
    args: str | Sequence[str],
    *,
    host: str,
    port: int | None = None,
    key: bytes | None = None,
    key_file: str | Path | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = False,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    shell: bool = False,
    capture_output: bool = True,
    output_limit: int | None = None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> CompletedProcess:
    """Run one command on ``host:port`` and return its ``CompletedProcess``.

    ``host`` is written as on the command line and may carry the port
    (``"server:7000"``, ``"[::1]:7000"``); ``port`` defaults to that one, else
    7420.

    ``timeout`` is enforced by the server, which ends the command's whole
    process group; the result then says ``timed_out`` (returncode 124).
    See ``ClientConnection.run`` for the other arguments and ``connect`` for
    the connection ones.

    Raises:
        CalledProcessError: with ``check``, a returncode other than 0.
        RemoteCommandError: the server refused the command.
        RexecConnectionError: connecting or authenticating failed.
        rexec.keyfile.KeyFileError: the key file can't be used.
        ValueError: a malformed address.
    """
    connection = await connect(
        host,
        port,
        resolve_key(key, key_file),
        ssl=ssl,
        server_hostname=server_hostname,
        connect_timeout=connect_timeout,
    )
    async with connection:
        return await connection.run(
            args,
            input=input,
            timeout=timeout,
            check=check,
            cwd=cwd,
            env=env,
            shell=shell,
            capture_output=capture_output,
            output_limit=output_limit,
        )


def run(
    args: str | Sequence[str],
    *,
    host: str,
    port: int | None = None,
    key: bytes | None = None,
    key_file: str | Path | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = False,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    shell: bool = False,
    capture_output: bool = True,
    output_limit: int | None = None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> CompletedProcess:
    """``run_async`` for synchronous code (it runs its own event loop, so it
    can't be called from a coroutine: await ``run_async`` there)."""
    return eventloop.run(
        run_async(
            args,
            host=host,
            port=port,
            key=key,
            key_file=key_file,
            input=input,
            timeout=timeout,
            check=check,
            cwd=cwd,
            env=env,
            shell=shell,
            capture_output=capture_output,
            output_limit=output_limit,
            ssl=ssl,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
        )
    )
