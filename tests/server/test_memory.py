"""rexecd's memory across bulk transfers, read from /proc in a real daemon:
what a transfer uses is bounded, and what it freed goes back to the kernel
when it ends, so a daemon serving transfer after transfer keeps the same
peak (issue 15: server RSS under 64 MiB in every row)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rexec.eventloop import RETURN_AFTER
from tests.transfer.client import TransferClient, file_digest

MiB = 1024 * 1024
#: Above ``RETURN_AFTER``, so that each transfer alone is bulk enough for its
#: end to hand the freed heap back.
SIZE = RETURN_AFTER + 16 * MiB
#: What one transfer may add to the daemon's resident memory at its peak: a
#: put's credit window (4 MiB) or a get's read-ahead and transport buffer
#: (3 MiB), the receive and frame buffers around them, with room to spare.
PEAK_ALLOWANCE = 16 * MiB
#: What may stay resident after a transfer ends (the heap's bookkeeping,
#: objects of the session, small blocks where freed pages were): not its
#: megabyte buffers (main kept 8.5 MiB after a get).
KEPT_ALLOWANCE = 5 * MiB
#: The same for a client process, which also keeps what its transfers'
#: threads and the connection's buffers hold (up to 6 MiB here under load;
#: main's library kept 20 MiB after three gets and puts).
CLIENT_KEPT_ALLOWANCE = 10 * MiB


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _reset_peak(pid: int) -> None:
    """Reset the process's ``VmHWM`` to its current RSS (proc(5), clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        for _ in range(size // MiB):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            file.write(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_transfers_do_not_ratchet_the_daemons_memory(server: Any, tmp_path: Path) -> None:
    pid = server.process.pid
    client = TransferClient.to(server)
    try:
        # Warm up: the message models and the session's first buffers exist
        # once a small put and get have run; the baseline is taken after.
        warm = tmp_path / "warm.bin"
        assert client.put_bytes(str(warm), os.urandom(3 * MiB)).error is None
        with open(os.devnull, "wb") as sink:
            assert client.get(str(warm), sink).error is None
        baseline = _status_kib(pid, "VmRSS") * 1024

        source = tmp_path / "source.bin"
        digest = _write_random(source, SIZE)
        copy = tmp_path / "copy.bin"
        for direction in ("put", "get", "put", "get"):
            _reset_peak(pid)
            if direction == "put":
                result = client.put_file(str(copy), source)
            else:
                with open(copy, "wb") as sink:
                    result = client.get(str(source), sink)
            assert result.error is None, result.error
            assert result.done is not None and result.done.sha256 == digest
            assert file_digest(copy) == digest
            # ``done`` is sent after the transfer's end has returned its memory.
            peak = _status_kib(pid, "VmHWM") * 1024 - baseline
            kept = _status_kib(pid, "VmRSS") * 1024 - baseline
            where = f"{direction} of {SIZE // MiB} MiB"
            assert peak < PEAK_ALLOWANCE, f"{where}: rexecd's peak {peak / MiB:.1f} MiB up"
            assert kept < KEPT_ALLOWANCE, f"{where}: rexecd kept {kept / MiB:.1f} MiB after it"
            copy.unlink()
    finally:
        client.close()


#: A client library process doing one transfer after another on one
#: connection; prints its resident memory (KiB) after each.
_LIBRARY_WORKER = """
import asyncio, sys
import rexec_client
from rexec.keyfile import load_key
from rexec_client.transfer import get, put

host, port, key, warm, source, copy = sys.argv[1:7]

def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))

async def main():
    conn = await rexec_client.connect(host, int(port), load_key(key))
    async with conn:
        # Warm up: the transfer messages' models exist after a small get and put.
        await get(conn, warm, copy)
        await put(conn, warm, copy)
        print(rss(), flush=True)
        for transfer in (get, put, get, put, get, put):
            await transfer(conn, source, copy)
            print(rss(), flush=True)

asyncio.run(main())
"""


@pytest.mark.slow
def test_transfers_do_not_ratchet_a_library_clients_memory(server: Any, tmp_path: Path) -> None:
    # A program using the library for transfer after transfer: what each
    # freed goes back at its end, so the process stays where the first
    # left it.
    warm, source = tmp_path / "warm.bin", tmp_path / "source.bin"
    _write_random(warm, 3 * MiB)
    _write_random(source, SIZE)
    out = subprocess.run(
        [sys.executable, "-c", _LIBRARY_WORKER, server.host, str(server.port),
         str(server.key_file), str(warm), str(source), str(tmp_path / "copy.bin")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    resident = [int(line) * 1024 for line in out.stdout.split()]
    assert len(resident) == 7
    kept = max(resident[1:]) - resident[0]
    shown = ", ".join(f"{r / MiB:.1f}" for r in resident)
    assert kept < CLIENT_KEPT_ALLOWANCE, f"the client's RSS, warm then after each: {shown} MiB"
