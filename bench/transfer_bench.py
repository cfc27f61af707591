"""put/get throughput of rexec on loopback, with the client library
(``rexec_client.transfer``) against a real ``rexecd``, files on tmpfs
(/dev/shm) so that the disk is not what is measured.

    python bench/transfer_bench.py [--size-mib 1024] [--repeat 3]

Prints MB/s (10^6 bytes/s) per transfer, including the put's hashing pass,
and the peak RSS of the server and of this client during the transfers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import rexec_client  # noqa: E402
from conftest import start_rexecd  # noqa: E402
from rexec_client.transfer.api import get, put  # noqa: E402


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.peak = {pid: 0 for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], _rss_kib(pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as file:
        for _ in range(size >> 20):
            file.write(block)


async def main_async(args: argparse.Namespace, server: object, work: Path) -> None:
    source = work / "source.bin"
    make_file(source, args.size_mib << 20)
    conn = await rexec_client.connect(server.host, server.port, server.key)  # type: ignore[attr-defined]
    async with conn:
        for i in range(args.repeat):
            remote = str(work / "remote.bin")
            with PeakRss(server.process.pid, os.getpid()) as rss:  # type: ignore[attr-defined]
                r = await put(conn, source, remote)
            print(f"put #{i}: {r.size / 1e6:.0f} MB in {r.seconds:.2f} s = {r.mb_per_s:.0f} MB/s "
                  f"(hash pass {r.hash_seconds:.2f} s; wire {r.size / 1e6 / (r.seconds - r.hash_seconds):.0f} MB/s) "
                  f"peak RSS server {rss.peak[server.process.pid] // 1024} MiB, "  # type: ignore[attr-defined]
                  f"client {rss.peak[os.getpid()] // 1024} MiB", flush=True)
            local = work / "back.bin"
            with PeakRss(server.process.pid, os.getpid()) as rss:  # type: ignore[attr-defined]
                r = await get(conn, remote, local)
            print(f"get #{i}: {r.size / 1e6:.0f} MB in {r.seconds:.2f} s = {r.mb_per_s:.0f} MB/s "
                  f"peak RSS server {rss.peak[server.process.pid] // 1024} MiB, "  # type: ignore[attr-defined]
                  f"client {rss.peak[os.getpid()] // 1024} MiB", flush=True)
            os.unlink(remote)
            os.unlink(local)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        work = Path(tmp)
        server = start_rexecd(work / "server")
        try:
            asyncio.run(main_async(args, server, work))
        finally:
            server.process.terminate()
            server.process.wait()


if __name__ == "__main__":
    main()
