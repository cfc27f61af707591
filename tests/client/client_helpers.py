"""Helpers for the client tests: the ``rexec`` CLI as a subprocess, a key file,
and a scripted fake server for handshake cases a real rexecd never produces."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import forkserver

from rexec.binding import connection_binding
from rexec.protocol import (
    PROTOCOL_VERSION,
    Auth,
    AuthOk,
    Connection,
    Hello,
    Message,
    MessageBase,
    Role,
    ServerLimits,
)

#: Bound on every CLI run in these tests.
CLI_TIMEOUT = 60


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "rexec_client.cli", *args]


def run_cli(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``rexec ARGS`` to its end, output captured, bounded (CLI_TIMEOUT):
    forked from a fork server that has imported the program
    (``forkserver.CLI_FORK_SERVER``), so each run skips its imports."""
    return forkserver.run(
        cli_argv(*args), input=input, timeout=CLI_TIMEOUT, server=forkserver.CLI_FORK_SERVER
    )


@asynccontextmanager
async def fake_server(
    key: bytes,
    *,
    versions: list[int] | None = None,
    prove: bool = True,
    tls: ssl.SSLContext | None = None,
    received: list[bytes] | None = None,
    limits: ServerLimits | None = None,
    after_auth: Sequence[MessageBase] = (),
    answer: Callable[[Message], Iterable[MessageBase]] | None = None,
) -> AsyncIterator[int]:
    """A server that greets, checks nothing, answers ``auth`` with ``auth_ok``
    (a wrong proof unless ``prove``), then reads and ignores everything: it
    never answers a ping. With ``tls``, it speaks TLS with that context (and
    binds nothing); ``received`` collects every byte a client sent; ``limits``
    are announced in ``hello`` instead of the protocol's; ``after_auth`` are
    sent right after ``auth_ok``. With ``answer``, every message after the
    handshake is given to it, and the messages it yields are sent back (a
    scripted, possibly malicious, server: the core checks that each is legal
    to send). Yields its port on 127.0.0.1."""

    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        protocol = Connection(Role.SERVER)
        nonce = secrets.token_hex(32)
        hello = Hello(
            versions=versions or [PROTOCOL_VERSION],
            nonce=nonce,
            server="fake",
            limits=limits or protocol.announced_limits(),
        )
        writer.write(protocol.send(hello))
        auth = None
        while auth is None and (data := await reader.read(65536)):
            if received is not None:
                received.append(data)
            protocol.receive_data(data)
            auth = protocol.next_event()
        if isinstance(auth, Auth):
            binding = connection_binding(writer, server=True)
            mac = protocol.transcript(binding).server_mac(key if prove else bytes(32), auth.mac)
            writer.write(protocol.send(AuthOk.with_mac(mac)))
            for message in after_auth:
                writer.write(protocol.send(message))
        while data := await reader.read(65536):
            if received is not None:
                received.append(data)
            if answer is not None:
                protocol.receive_data(data)
                while (event := protocol.next_event()) is not None:
                    for message in answer(event):
                        writer.write(protocol.send(message))
                        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def write_key(path: Path) -> Path:
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path


def kill_once(argv: list[str], condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Start ``argv`` (output discarded) and SIGKILL it as soon as
    ``condition()`` holds (checked every 5 ms, for ``timeout`` seconds at
    most; it must not end before). Returns once it is reaped; on a failed
    check it is killed too."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not condition():
            assert process.poll() is None, "it ended before it could be killed"
            assert time.monotonic() < deadline, f"not killed within {timeout} s"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
