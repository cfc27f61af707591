"""The floor's contenders as ``bench/floor.py`` drives them: the floor
servers as ``run.py`` peers (rt, conc, bulk) and the floor's echo client
on a local pty (``interactive_bench``'s echo row, typed at once it is ready)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import floor_client
import interactive_bench as ib
import run as rb

PY = sys.executable
#: Server processes of the floor: name -> its options, and the rows it runs in.
SERVERS = {
    "threads+posix_spawn": ([], ("rt", "conc", "bulk")),
    "threads+popen": (["--spawn", "popen"], ("rt", "conc", "bulk")),
    "asyncio+posix_spawn": (["--io", "asyncio"], ("rt", "conc", "bulk")),
    "threads+splice": (["--out", "splice"], ("bulk",)),
    "transfer-plain": (["--transfer", "plain"], ()),
    "transfer-mmap": (["--transfer", "mmap"], ()),
    # The 16 connections driven from one thread by a selector (the others: a thread each).
    "threads+popen, selector client": (["--spawn", "popen"], ("conc",)),
    "asyncio+posix_spawn, selector client": (["--io", "asyncio"], ("conc",)),
}


class FloorServer(rb.Peer):
    """One floor server process, measured as a ``run.py`` peer (rt, conc, bulk)."""

    def __init__(self, variant: str) -> None:
        self.name = f"floor:{variant}"
        self.options, self.metrics = SERVERS[variant]

    async def setup(self, tmp: Path) -> None:
        self.proc, self.host, self.port = rb.start_listening_process(
            [PY, str(rb.BENCH / "floor_server.py"), *self.options],
            env=ib.ENV,
            pattern=b"floor listening on ",
        )
        self.client = floor_client.Client(self.host, self.port)
        self.bulk_client = floor_client.Client(self.host, self.port, buffer=4096)
        self.pool = [floor_client.Client(self.host, self.port) for _ in range(rb.CONCURRENCY)]

    async def teardown(self) -> None:
        for c in [self.client, self.bulk_client, *self.pool]:
            c.close()
        rb.stop_process(self.proc)

    def server_pids(self) -> list[int]:
        return rb._tree(self.proc.pid)

    async def rt_once(self) -> None:
        if self.client.run(rb.TRUE)[0] != 0:
            raise RuntimeError("true failed")

    async def conc(self, duration: float) -> float:
        if "selector" in self.name:
            return floor_client.run_many(self.pool, rb.TRUE, duration)
        local, free, lock = threading.local(), list(self.pool), threading.Lock()

        def one() -> None:
            if not hasattr(local, "client"):
                with lock:
                    local.client = free.pop()
            local.client.run(rb.TRUE)

        return rb.thread_concurrent(one, rb.CONCURRENCY, duration)

    async def bulk(self, nbytes: int) -> int:
        return self.bulk_client.run(["head", "-c", str(nbytes), "/dev/zero"])[1]


class ReadyEchoSession(ib.EchoSession):
    """The floor's echo client on a local pty, typed at only once it says
    its terminal is raw (``floor_client.READY``)."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv, setup=b"", ready=floor_client.READY)

    def _read_until(self, marker, timeout):
        # EchoSession waits for READY after the (empty) setup: seen already.
        return b"" if marker == b"READY" else super()._read_until(marker, timeout)


class ReadyRow(ib.LatencyRow):
    def open(self) -> None:
        self.session = ReadyEchoSession(self.argv)
