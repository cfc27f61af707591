"""Load, bounded for CI: 1,000 concurrent connections, a soak that checks every
exit status and output digest, and overload at twice the command cap."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

import pytest
from server.wire import Wire

from .conftest import Daemon, healthy, open_wire, wait_until

MiB = 2**20


def settle_fds(server: Daemon, baseline: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        now = server.fds()
        if abs(now - baseline) <= 2 or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


@pytest.mark.slow
def test_1000_concurrent_connections(daemon) -> None:
    server = daemon(
        "--max-connections", "2000", "--max-connections-per-source", "2000",
        "--max-connections-per-key", "2000",
        "--max-total-commands", "2000",
        shell_prefix="ulimit -n 8192",
    )  # fmt: skip
    assert healthy(server)
    time.sleep(0.1)
    baseline = server.fds()
    wires: list[Wire] = []
    try:
        for _ in range(1000):
            wires.append(open_wire(server))
        assert server.fds() >= baseline + 1000  # all open at once
        ids = [wire.run(["true"]) for wire in wires]
        for wire, command_id in zip(wires, ids, strict=True):
            result = wire.wait(command_id, 60)
            assert result.exit is not None and result.exit.exit_code == 0, result.frames
    finally:
        for wire in wires:
            wire.close()
    assert settle_fds(server, baseline) - baseline <= 2
    assert healthy(server)

    def counts() -> dict[str, int]:
        names = ("exec", "connect", "disconnect")
        records = server.audit_records()
        return {name: sum(1 for r in records if r["event"] == name) for name in names}

    # The last disconnect is recorded when the server has seen that
    # connection close, which may come after the client's side returned, and
    # the audit writer may lag far behind under load: a prefix of the log can
    # show as many disconnects as connects (after the first health check), so
    # wait for every disconnect, then check each count exactly.
    final = wait_until(lambda: (c := counts())["disconnect"] >= 1002 and c, 30, 0.1)
    assert final, counts()
    assert final == {"exec": 1002, "connect": 1002, "disconnect": 1002}  # + two health checks


SOAK_CLIENTS = 32
SOAK_COMMANDS = 4000


def soak_command(seed: int, data_file: Path, data: bytes) -> tuple[list[str], bytes, bytes, int]:
    """A command printing a seeded slice of ``data`` on stdout, another on
    stderr, exiting with seed % 256; and what it must produce."""
    rng = random.Random(seed)
    lengths = [
        rng.choice((0, 1, rng.randrange(2, 4096), rng.randrange(4096, 128 * 1024)))
        for _ in range(2)
    ]
    offsets = [rng.randrange(0, len(data) - length) for length in lengths]

    # Every process the command forks is load on the two cores CI has, and
    # the soak is of the server: the shell prints an empty or one-byte slice
    # itself (half of them), one dd per stream prints the others (not a
    # tail | head pipeline).
    def emit(offset: int, length: int) -> str:
        if length == 0:
            return ":"
        if length == 1:
            return f"printf '\\{data[offset]:03o}'"
        return (
            f"dd if={data_file} bs=64K iflag=skip_bytes,count_bytes status=none "
            f"skip={offset} count={length}"
        )

    script = (
        f"{emit(offsets[0], lengths[0])}; {emit(offsets[1], lengths[1])} >&2; exit {seed % 256}"
    )
    out = data[offsets[0] : offsets[0] + lengths[0]]
    err = data[offsets[1] : offsets[1] + lengths[1]]
    return ["sh", "-c", script], out, err, seed % 256


@pytest.mark.slow
def test_soak_every_exit_and_digest(daemon, tmp_path: Path) -> None:
    data = random.Random(20240611).randbytes(2 * MiB)  # NULs and invalid UTF-8 included
    data_file = tmp_path / "data"
    data_file.write_bytes(data)
    server = daemon("--max-total-commands", "64")
    # Warm up, then take the baseline.
    with open_wire(server) as wire:
        for _ in range(20):
            wire.wait(wire.run(["head", "-c", "200000", str(data_file)]), 10)
    time.sleep(0.2)
    rss_start, fds_start = server.rss(), server.fds()
    failures: list[str] = []
    done = [0] * SOAK_CLIENTS
    samples: list[int] = []

    def client(index: int) -> None:
        try:
            with open_wire(server) as wire:
                for n in range(index, SOAK_COMMANDS, SOAK_CLIENTS):
                    argv, out, err, code = soak_command(n, data_file, data)
                    result = wire.wait(wire.run(argv), 30)
                    if result.exit is None or result.exit.exit_code != code:
                        failures.append(f"seed {n}: {result.frames[-1]!r}")
                    elif hashlib.sha256(result.stdout).digest() != hashlib.sha256(out).digest():
                        failures.append(f"seed {n}: stdout digest")
                    elif hashlib.sha256(result.stderr).digest() != hashlib.sha256(err).digest():
                        failures.append(f"seed {n}: stderr digest")
                    elif (result.exit.stdout_bytes, result.exit.stderr_bytes) != (
                        len(out),
                        len(err),
                    ):
                        failures.append(f"seed {n}: exit counts")
                    done[index] += 1
        except Exception as exc:  # reported below
            failures.append(f"client {index}: {exc!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(SOAK_CLIENTS)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        samples.append(server.rss())
        time.sleep(0.5)
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    time.sleep(0.2)
    rss_end = server.rss()
    fds_end = settle_fds(server, fds_start)
    rate = SOAK_COMMANDS / elapsed
    print(
        f"\nsoak: {SOAK_COMMANDS} commands from {SOAK_CLIENTS} clients in {elapsed:.1f} s "
        f"= {rate:.0f} commands/s; server RSS {rss_start / MiB:.1f} MiB at start, "
        f"{rss_end / MiB:.1f} MiB at end, peak {max(samples, default=rss_end) / MiB:.1f} MiB; "
        f"fds {fds_start} -> {fds_end}"
    )
    assert failures == []
    assert sum(done) == SOAK_COMMANDS
    assert rss_end - rss_start < 8 * MiB
    assert abs(fds_end - fds_start) <= 2
    execs = sum(1 for r in server.audit_records() if r["event"] == "exec")
    assert execs == SOAK_COMMANDS + 20


def test_overload_at_twice_the_cap(daemon, marker) -> None:
    cap = 8
    server = daemon("--max-total-commands", str(cap))
    wires = [open_wire(server) for _ in range(2 * cap)]
    try:
        for _round in range(3):
            ids = [wire.run(["sh", "-c", "sleep 0.3; echo done; exit 7"]) for wire in wires]
            started = time.monotonic()
            codes: dict[str, int] = {}
            busy_times = []
            for wire, command_id in zip(wires, ids, strict=True):
                result = wire.wait(command_id, 10)
                if result.error is not None:
                    codes[result.error.code] = codes.get(result.error.code, 0) + 1
                    busy_times.append(time.monotonic() - started)
                    assert result.error.fatal is False
                else:
                    assert result.exit.exit_code == 7 and bytes(result.stdout) == b"done\n"
                    codes["ok"] = codes.get("ok", 0) + 1
            assert codes == {"ok": cap, "busy": cap}, codes
    finally:
        for wire in wires:
            wire.close()
    assert healthy(server)
