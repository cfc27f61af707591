"""``RemoteProcess.communicate`` without input: both streams drained at once,
and nothing left running when the caller gives up (its one-task path)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from client_helpers import CLI_TIMEOUT

import rexec_client

#: Small enough that one stream left unread stops the connection.
HIGH_WATER = 64 * 1024
SIZE = 1024 * 1024


async def _connect(server: Any) -> rexec_client.ClientConnection:
    return await rexec_client.connect(
        server.host, server.port, server.key, output_high_water=HIGH_WATER
    )


@pytest.mark.parametrize("first", ["stdout", "stderr"])
def test_both_streams_beyond_the_high_water_mark_arrive_whole(server: Any, first: str) -> None:
    """A command that fills one stream far beyond the high-water mark before
    writing the other: reading one stream to its end before the other would
    stop the connection (and the command) for ever."""
    to_first, to_second = (">&2", "") if first == "stderr" else ("", ">&2")
    script = (
        f"head -c {SIZE} /dev/zero | tr '\\0' e {to_first}; "
        f"head -c {SIZE} /dev/zero | tr '\\0' o {to_second}"
    )

    async def go() -> tuple[bytes | None, bytes | None]:
        conn = await _connect(server)
        try:
            process = await conn.start(["sh", "-c", script])
            return await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
        finally:
            await conn.close()

    out, err = asyncio.run(go())
    first_bytes, second_bytes = (err, out) if first == "stderr" else (out, err)
    assert first_bytes == b"e" * SIZE
    assert second_bytes == b"o" * SIZE


def test_a_cancelled_communicate_leaves_no_reader_running(server: Any) -> None:
    """Cancelling ``communicate`` (a caller's timeout) ends its stderr reader
    too: no task of it goes on reading, and the process can still be ended."""

    async def go() -> tuple[list[str], int | None]:
        conn = await _connect(server)
        try:
            process = await conn.start(["sh", "-c", "echo partial >&2; exec sleep 60"])
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(process.communicate(), 0.5)
            await asyncio.sleep(0)  # let a cancelled task run its end
            left = [
                repr(task.get_coro())
                for task in asyncio.all_tasks()
                if "_collect" in repr(task.get_coro())
            ]
            process.kill()
            status = await asyncio.wait_for(process.wait(), CLI_TIMEOUT)
            return left, status.signal
        finally:
            await conn.close()

    left, signal = asyncio.run(go())
    assert left == []
    assert signal == 9


def test_communicate_after_the_end_returns_all_of_both_streams(server: Any) -> None:
    """Once the command has ended (a short command's exit often comes with
    its ``started``), ``communicate`` returns everything it wrote, captured
    or copied to the files given."""
    script = "printf 'out%.0s' $(seq 1000); printf 'err%.0s' $(seq 1000) >&2"

    async def go() -> tuple[tuple[bytes | None, bytes | None], ...]:
        conn = await _connect(server)
        try:
            results = []
            for sinks in ({}, {"stdout": io.BytesIO(), "stderr": io.BytesIO()}):
                process = await conn.start(["sh", "-c", script])
                await asyncio.wait_for(process.wait(), CLI_TIMEOUT)
                captured = await asyncio.wait_for(process.communicate(**sinks), CLI_TIMEOUT)
                copied = tuple(sink.getvalue() for sink in sinks.values())
                results.append(captured + copied)
            return tuple(results)
        finally:
            await conn.close()

    captured, copied = asyncio.run(go())
    assert captured == (b"out" * 1000, b"err" * 1000)
    assert copied == (None, None, b"out" * 1000, b"err" * 1000)
