"""Client mode: drive the scripted server with a small raw client built on
the suite's own Wire/Client, scenario by scenario."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from rexec.conformance.client import Client, SetupError
from rexec.conformance.serve import serve
from rexec.conformance.serve_scenarios import PING_SEQ
from rexec.conformance.wire import PeerFrameError, Target, Wire, WireLog
from rexec.protocol import Error, Ping, Pong, Stdin, StdinEof

KEY = bytes(range(32))
OPEN: list[Wire] = []


@contextlib.asynccontextmanager
async def scripted(handshake: str = "ok") -> AsyncIterator[tuple[int, io.StringIO]]:
    """Run the scripted server on a free port; yield the port and its log."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[int] = loop.create_future()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        task = asyncio.ensure_future(serve("127.0.0.1", 0, KEY, handshake, ready))
        try:
            yield await ready, log
        finally:
            while OPEN:
                OPEN.pop().close()
            await asyncio.sleep(0.05)  # let the last connection report
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def connect(port: int, *, handshake: bool = True) -> Client:
    wire = await Wire.open(Target("127.0.0.1", port), WireLog(), 1, timeout=5)
    OPEN.append(wire)
    client = Client(wire, KEY)
    if handshake:
        await client.handshake(5)
    return client


def reports(log: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]


def run_async(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


def test_hello_announces_a_one_byte_window() -> None:
    async def body() -> None:
        async with scripted() as (port, _):
            client = await connect(port)
            assert client.hello is not None and client.hello.limits.stdin_window == 1

    run_async(body)


@pytest.mark.parametrize(
    ("scenario", "stdout", "stderr", "code", "signal"),
    [
        ("chunks", b"hello, world\n", b"warn\n", 0, None),
        ("many-frames", b"".join(b"line %d\n" % i for i in range(100)), b"", 0, None),
        ("signal", b"dying\n", b"", None, 9),
        ("exit-255", b"", b"", 255, None),
        ("unknown-error", b"ok\n", b"", 0, None),
        ("ping", b"tick\ntock\n", b"", 0, None),
        ("extended", b"ok\n", b"", 0, None),
        ("max-size", bytes(i % 251 for i in range(1024 * 1024)), b"", 0, None),
    ],
)
def test_scenarios_as_a_conforming_client_sees_them(
    scenario: str, stdout: bytes, stderr: bytes, code: int | None, signal: int | None
) -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            command_id = await client.run(argv=[scenario])
            assert await client.wait_terminal(command_id, 5)
            record = client.records[command_id]
            assert bytes(record.stdout) == stdout and bytes(record.stderr) == stderr
            assert record.exit is not None
            assert (record.exit.exit_code, record.exit.signal) == (code, signal)
            assert not record.order_faults()
            if scenario == "unknown-error":
                assert any(m.type == "error" and not m.fatal for m in client.other)
            client.wire.close()
        assert reports(log)[-1]["violations"] == []

    run_async(body)


def test_cat_with_a_one_byte_credit() -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            command_id = await client.run(argv=["cat"], stdin=True)
            assert await client.send_stdin(command_id, b"abcdef", timeout=5)
            await client.stdin_eof(command_id)
            assert await client.wait_terminal(command_id, 5)
            assert bytes(client.records[command_id].stdout) == b"abcdef"
            assert client.records[command_id].credit_granted == 6
            client.wire.close()
        assert reports(log)[-1]["violations"] == []

    run_async(body)


def test_cat_catches_a_client_that_ignores_the_credit() -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            command_id = await client.run(argv=["cat"], stdin=True)
            await client.wire.send(
                Stdin.with_data(command_id, b"too much"), StdinEof(id=command_id)
            )
            await client.pump(5, until=lambda: client.fatal_error() is not None)
            error = client.fatal_error()
            assert error is not None and error.code == "flow.window_exceeded"
        assert any("credit" in v for v in reports(log)[-1]["violations"])

    run_async(body)


def test_unknown_error_catches_a_client_that_treats_it_as_fatal() -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            command_id = await client.run(argv=["unknown-error"])
            await client.pump(5, until=lambda: any(m.type == "error" for m in client.other))
            await client.wire.send(
                Error(code="protocol.unexpected", message="unknown code", fatal=True)
            )
            await client.wait_terminal(command_id, 1)
            client.wire.close()
        assert any("[error.unknown.accept]" in v for v in reports(log)[-1]["violations"])

    run_async(body)


def test_ping_catches_a_client_that_never_answers() -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            client.wire.auto_pong = False
            command_id = await client.run(argv=["ping"])
            await client.pump(5, until=lambda: client.records[command_id].terminal)
            record = client.records[command_id]
            assert record.exit is not None and record.exit.exit_code == 1
            assert bytes(record.stderr) == b"no pong\n"
            assert PING_SEQ == 4711
            client.wire.close()
        assert any("pong" in v for v in reports(log)[-1]["violations"])

    run_async(body)


def test_malformed_frame_is_a_decoding_error_for_the_client() -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            command_id = await client.run(argv=["malformed"])
            with pytest.raises(PeerFrameError) as caught:
                await client.pump(5, until=lambda: False)
            assert caught.value.code == "frame.bad_length"
            assert bytes(client.records[command_id].stdout) == b"partial\n"
            client.wire.close()  # what a conforming client does
        assert reports(log)[-1]["violations"] == []

    run_async(body)


def test_bad_mac_is_caught_by_a_verifying_client_and_a_careless_one_is_reported() -> None:
    async def body() -> None:
        async with scripted("bad-mac") as (port, log):
            with pytest.raises(SetupError, match="proof is wrong"):
                await connect(port)  # verifies the mac, sends nothing
            OPEN.pop().close()  # and closes
            await asyncio.sleep(0.1)
            careless = await connect(port, handshake=False)
            await careless.read_hello(5)
            await careless.wire.send(careless.auth_message())
            await careless.wire.next_frame(5)  # auth_ok with a wrong mac, ignored
            await careless.wire.send(Ping(seq=1))
            await careless.pump(2, until=lambda: any(isinstance(m, Pong) for m in careless.other))
            careless.wire.close()
        first, second = reports(log)[-2:]
        assert first["violations"] == []
        assert any("auth.mutual" in v for v in second["violations"])
        assert first["handshake"] == "bad-mac: refused by the client"
        assert second["handshake"] == "bad-mac: accepted by the client"

    run_async(body)


def test_altered_hello_is_caught_by_the_transcript_and_a_careless_client_reported() -> None:
    # [auth.transcript]: the auth_ok mac is over a hello other than the one sent.
    async def body() -> None:
        async with scripted("altered-hello") as (port, log):
            with pytest.raises(SetupError, match="proof is wrong"):
                await connect(port)
            OPEN.pop().close()
            await asyncio.sleep(0.1)
            careless = await connect(port, handshake=False)
            await careless.read_hello(5)
            await careless.wire.send(careless.auth_message())
            await careless.wire.next_frame(5)  # auth_ok, its mac not checked
            await careless.wire.send(Ping(seq=1))
            await careless.pump(2, until=lambda: any(isinstance(m, Pong) for m in careless.other))
            careless.wire.close()
        first, second = reports(log)[-2:]
        assert first["violations"] == []
        assert any("auth.transcript" in v for v in second["violations"])
        assert first["handshake"] == "altered-hello: refused by the client"
        assert second["handshake"] == "altered-hello: accepted by the client"

    run_async(body)


def test_version_1_only_hello() -> None:
    async def body() -> None:
        async with scripted("version-1") as (port, log):
            client = await connect(port, handshake=False)
            hello = await client.read_hello(5)
            assert hello.versions == [1]
            client.wire.close()  # a version-2 client closes and reports the mismatch
            await asyncio.sleep(0.1)
        assert reports(log)[-1]["handshake"] == "client closed before auth"

    run_async(body)


def test_unknown_scenario_is_spawn_not_found() -> None:
    async def body() -> None:
        async with scripted() as (port, _):
            client = await connect(port)
            command_id = await client.run(argv=["no-such-scenario"])
            assert await client.wait_terminal(command_id, 5)
            error = client.records[command_id].error
            assert error is not None and error.code == "spawn.not_found" and not error.fatal

    run_async(body)


def test_max_size_catches_a_client_with_too_small_a_body_limit() -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            command_id = await client.run(argv=["max-size"])
            await client.pump(5, until=lambda: client.records[command_id].stdout)
            await client.wire.send(
                Error(code="frame.body_too_large", message="body over 64 KiB", fatal=True)
            )
            await client.wait_terminal(command_id, 2)
            client.wire.close()
        assert any("[limits.announced]" in v for v in reports(log)[-1]["violations"])

    run_async(body)


def test_unknown_id_passes_a_client_that_fails_with_bad_id() -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            await client.run(argv=["unknown-id"])
            await client.wire.send(
                Error(code="command.bad_id", message="id 2 was never opened", fatal=True)
            )
            await client.pump(3, until=lambda: False)
            client.wire.close()
        assert reports(log)[-1]["violations"] == []

    run_async(body)


def test_unknown_id_catches_a_client_that_carries_on() -> None:
    async def body() -> None:
        async with scripted() as (port, log):
            client = await connect(port)
            command_id = await client.run(argv=["unknown-id"])
            await client.pump(6, until=lambda: client.records[command_id].terminal)
            assert bytes(client.records[command_id].stdout) == b"ok\n"
            client.wire.close()
        assert any("[command.id.unknown]" in v for v in reports(log)[-1]["violations"])

    run_async(body)
