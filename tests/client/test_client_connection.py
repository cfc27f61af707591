"""``connect()``, ``ClientConnection`` and ``RemoteProcess`` against a real
rexecd (and a fake server for handshake failures rexecd never produces)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psutil
import pytest
from client_helpers import fake_server

from rexec_client import (
    AuthenticationError,
    ClientConnection,
    RexecConnectionError,
    VersionMismatch,
    connect,
)
from rexec_client.connection import DEFAULT_OUTPUT_HIGH_WATER

T = TypeVar("T")


def with_connection(server: Any, body: Callable[[ClientConnection], Awaitable[T]], **kw: Any) -> T:
    async def go() -> T:
        async with await connect(server.host, server.port, server.key, **kw) as connection:
            return await asyncio.wait_for(body(connection), 60)

    return asyncio.run(go())


def test_fifty_commands_run_at_once_on_one_connection(server: Any) -> None:
    script = 'sleep 0.5; printf "%s" "$1"; printf "%s" "$2" >&2; exit "$2"'

    async def body(connection: ClientConnection) -> tuple[list[Any], float]:
        started = time.monotonic()
        results = await asyncio.gather(
            *(connection.run(["sh", "-c", script, "sh", f"out{i}", str(i)]) for i in range(50))
        )
        return results, time.monotonic() - started

    results, elapsed = with_connection(server, body)
    for i, result in enumerate(results):
        assert (result.stdout, result.stderr, result.returncode) == (
            f"out{i}".encode(),
            str(i).encode(),
            i,
        )
    assert elapsed < 10, "50 half-second commands should overlap, not run one after another"


def test_signal_reaches_a_command_that_never_reads_its_stdin(server: Any) -> None:
    async def body(connection: ClientConnection) -> tuple[Any, Any]:
        process = await connection.start(["sleep", "30"], stdin=True)
        assert process.stdin is not None
        process.stdin.write(b"x" * (4 * 2**20))  # far beyond the stdin credit
        await asyncio.sleep(0.3)
        process.send_signal("SIGTERM")
        status = await asyncio.wait_for(process.wait(), 10)
        with pytest.raises(BrokenPipeError):
            await process.stdin.drain()
        after = await connection.run(["echo", "still usable"])
        return status, after

    status, after = with_connection(server, body)
    assert (status.signal_name, status.signal, status.returncode) == ("SIGTERM", 15, 128 + 15)
    assert status.stdin_bytes < 4 * 2**20
    assert after.stdout == b"still usable\n"


def test_signals_by_local_number_or_short_name(server: Any) -> None:
    async def body(connection: ClientConnection) -> list[Any]:
        first = await connection.start(["sleep", "30"])
        second = await connection.start(["sleep", "30"])
        first.send_signal(signal.SIGINT)
        second.send_signal("usr1")
        return [await first.wait(), await second.wait()]

    first, second = with_connection(server, body)
    assert (first.signal_name, first.returncode) == ("SIGINT", 130)
    assert second.signal_name == "SIGUSR1"


def test_unsupported_signal_is_refused_locally(server: Any) -> None:
    async def body(connection: ClientConnection) -> None:
        process = await connection.start(["true"])
        with pytest.raises(ValueError, match="SIGTERM"):
            process.send_signal("SIGSEGV")
        await process.wait()

    with_connection(server, body)


def test_cancel_ends_the_command_and_says_cancelled(server: Any) -> None:
    async def body(connection: ClientConnection) -> Any:
        process = await connection.start(["sleep", "30"])
        process.cancel()
        return await asyncio.wait_for(process.wait(), 10)

    status = with_connection(server, body)
    assert status.cancelled and not status.timed_out and not status.connection_lost


def test_output_is_read_line_by_line_as_it_comes(server: Any) -> None:
    async def body(connection: ClientConnection) -> list[bytes]:
        process = await connection.start("echo one; sleep 0.2; echo two; printf tail", shell=True)
        lines = [line async for line in process.stdout]
        await process.wait()
        return lines

    assert with_connection(server, body) == [b"one\n", b"two\n", b"tail"]


def test_unread_output_is_bounded_then_delivered_whole(server: Any) -> None:
    size = 32 * 2**20

    async def body(connection: ClientConnection) -> tuple[int, int]:
        process = await connection.start(["head", "-c", str(size), "/dev/zero"])
        await asyncio.sleep(1.0)  # read nothing for a while
        buffered = process.stdout.buffered
        total = len(await process.stdout.read())
        await process.wait()
        return buffered, total

    buffered, total = with_connection(server, body)
    assert buffered <= DEFAULT_OUTPUT_HIGH_WATER + 2**20
    assert total == size


def test_lost_connection_ends_running_commands_with_connection_lost(start_server: Any) -> None:
    server = start_server()

    async def body(connection: ClientConnection) -> tuple[Any, int]:
        process = await connection.start(["sleep", "30"])
        assert process.pid is not None
        server.process.kill()
        status = await asyncio.wait_for(process.wait(), 10)
        with pytest.raises(RexecConnectionError):
            await connection.start(["true"])
        return status, process.pid

    status, orphan = with_connection(server, body)
    # The server died without reaping its command: end that sleep ourselves.
    try:
        leftover = psutil.Process(orphan)
        if leftover.name() == "sleep":
            leftover.kill()
    except psutil.NoSuchProcess:
        pass
    assert status.connection_lost and status.returncode == 255
    assert status.exit_code is None and status.signal is None
    assert "closed the connection" in (status.connection_error or "")


def test_a_server_that_cannot_prove_the_key_is_refused() -> None:
    key = bytes(range(32))

    async def go() -> None:
        async with fake_server(key, prove=False) as port:
            with pytest.raises(AuthenticationError, match="could not prove"):
                await connect("127.0.0.1", port, key)

    asyncio.run(go())


def test_version_mismatch_is_a_clear_error() -> None:
    key = bytes(range(32))

    async def go() -> None:
        async with fake_server(key, versions=[1, 2]) as port:
            with pytest.raises(VersionMismatch, match="version"):
                await connect("127.0.0.1", port, key)

    asyncio.run(go())


def test_a_tls_session_that_cannot_be_bound_is_refused_before_auth() -> None:
    """[auth.binding]: over TLS 1.2 (a server that still allows it, a client
    context the user made) the channel binding can't be computed; the client
    refuses to authenticate unbound: it sends nothing and says why."""
    import ssl

    import trustme

    key = bytes(range(32))
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    server_context.maximum_version = ssl.TLSVersion.TLSv1_2
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_context)
    received: list[bytes] = []

    async def go() -> None:
        async with fake_server(key, tls=server_context, received=received) as port:
            with pytest.raises(RexecConnectionError, match="TLSv1.3") as info:
                await connect("127.0.0.1", port, key, ssl=client_context)
            assert info.value.code == "tls.binding_unavailable"

    asyncio.run(go())
    assert received == []  # not even an auth left the client


def test_keepalive_declares_a_silent_server_dead() -> None:
    key = bytes(range(32))

    async def go() -> tuple[Any, float]:
        async with fake_server(key) as port:
            connection = await connect("127.0.0.1", port, key, keepalive=0.2, keepalive_timeout=0.5)
            async with connection:
                started = time.monotonic()
                while not connection.is_closed and time.monotonic() - started < 10:
                    await asyncio.sleep(0.05)
                return connection.is_closed, time.monotonic() - started

    closed, elapsed = asyncio.run(go())
    assert closed and elapsed < 5


def test_connect_to_a_closed_port_fails_fast() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RexecConnectionError, match="connection refused"):
        asyncio.run(connect("127.0.0.1", port, bytes(32)))
