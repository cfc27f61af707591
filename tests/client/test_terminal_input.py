"""A terminal's input forwarded to a remote command (``forward_input`` on a
tty, as ``rexec run -t`` does it): read in the event loop's reader callback,
paused while stdin waits for credit, read again when it is granted."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import select
import signal
import time
import tty
from typing import Any

from rexec_client import connect
from rexec_client.term.relay import forward_input

PASTE = bytes(range(97, 123)) * (2**20 // 26)  # ~1 MiB of letters: 4x the stdin credit


def _type_all(master: int) -> None:
    """Write the paste to the terminal as fast as it is read, for at most 120 s."""
    deadline = time.monotonic() + 120
    view = memoryview(PASTE)
    while view and time.monotonic() < deadline:
        if select.select([], [master], [], 1.0)[1]:
            with contextlib.suppress(BlockingIOError):
                view = view[os.write(master, view) :]


def test_a_paste_beyond_the_credit_pauses_the_terminal_then_arrives_whole(server: Any) -> None:
    async def go() -> bytes:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        try:
            async with await connect(server.host, server.port, server.key) as connection:
                # The command stops before reading, so the credit runs out.
                script = f"echo $$; kill -STOP $$; head -c {len(PASTE)} | sha256sum"
                process = await connection.start(["sh", "-c", script], stdin=True)
                assert process.stdin is not None
                pid = int(await process.stdout.readline())
                feeder = asyncio.create_task(forward_input(process.stdin, slave))
                typist = asyncio.create_task(asyncio.to_thread(_type_all, master))
                async with asyncio.timeout(60):  # a backlog forms: the reader is paused
                    while not process.stdin.unsent:
                        await asyncio.sleep(0.01)
                os.kill(pid, signal.SIGCONT)
                async with asyncio.timeout(120):
                    await typist
                    out = await process.stdout.read()
                    await process.wait()
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)
                return out
        finally:
            os.close(master)
            os.close(slave)

    out = asyncio.run(go())
    assert out.split()[0].decode() == hashlib.sha256(PASTE).hexdigest()
