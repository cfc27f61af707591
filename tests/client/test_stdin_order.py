"""Stdin bytes reach the command in the order written, whether a write is sent
at once (a keystroke) or queued behind bytes waiting for credit."""

from __future__ import annotations

import asyncio
from typing import Any

from rexec_client import connect


def test_small_writes_behind_a_backlog_arrive_in_order(server: Any) -> None:
    pieces = [bytes([65 + i % 26]) * (1 + i % 7) for i in range(200)]
    big = bytes(range(256)) * (3 * 2**20 // 256)  # far beyond one stdin credit

    async def go() -> tuple[bytes, int]:
        async with await connect(server.host, server.port, server.key) as connection:
            process = await connection.start(["cat"], stdin=True)
            assert process.stdin is not None
            for piece in pieces[:100]:  # sent at once, one frame each
                process.stdin.write(piece)
            process.stdin.write(big)  # most of it waits for credit
            for piece in pieces[100:]:  # must queue behind it, not overtake it
                process.stdin.write(piece)
            process.stdin.close()
            out, _ = await asyncio.wait_for(process.communicate(), 60)
            status = await process.wait()
            return out, status.stdin_bytes

    out, stdin_bytes = asyncio.run(go())
    expected = b"".join(pieces[:100]) + big + b"".join(pieces[100:])
    assert len(out) == len(expected)
    assert out == expected
    assert stdin_bytes == len(expected)
