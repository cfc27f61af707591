#!/usr/bin/env python3
"""CPU per operation, client library + rexecd, for a machine shared with other jobs.

    python bench/cpu_cost.py [--rt 2000] [--gib 1] [--reps 3] [--profile DIR]

Wall-clock rates mean little while other jobs share the CPUs; the CPU a rexec
operation costs (the client's user+sys from ``getrusage``, the daemon's from
``/proc/PID/stat``) depends much less on them. Prints, per repetition and as a
median: CPU per warm ``true`` round trip (client, server; the command itself is
in neither) and CPU per GiB of stdout read through ``process.stdout.read``;
then rexecd's peak RSS.
With ``--profile DIR`` the client side of each workload is also run under
cProfile and its top functions written to DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import resource
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from interactive_bench import start_listening_process  # noqa: E402

MiB = 1 << 20
_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _round_trips(conn, count: int) -> None:
    for _ in range(count):
        result = await conn.run(["true"])
        if result.returncode != 0:
            raise RuntimeError("true failed")


async def _bulk(conn, nbytes: int) -> None:
    proc = await conn.start(["head", "-c", str(nbytes), "/dev/zero"])
    got = 0
    while chunk := await proc.stdout.read(MiB):
        got += len(chunk)
    await proc.wait()
    if got != nbytes:
        raise RuntimeError(f"read {got} of {nbytes} bytes")


async def _measure(pid: int, work) -> tuple[float, float]:
    server, client = _proc_cpu(pid), _self_cpu()
    await work
    return _self_cpu() - client, _proc_cpu(pid) - server


async def main(args: argparse.Namespace) -> None:
    import rexec_client

    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key"
        daemon, host, port = start_listening_process(
            [sys.executable, "-m", "rexec.daemon", "--port", "0", "--key-file", str(key_file),
             "--audit-log", "/dev/null"],
            pattern=b"rexecd listening on ",
        )  # fmt: skip
        try:
            key = bytes.fromhex(key_file.read_text().strip())
            conn = await rexec_client.connect(host, port, key)
            await _round_trips(conn, 50)
            nbytes = int(args.gib * (1 << 30))
            rt, bulk = [], []
            for _ in range(args.reps):
                c, s = await _measure(daemon.pid, _round_trips(conn, args.rt))
                rt.append((c / args.rt * 1e6, s / args.rt * 1e6))
                c, s = await _measure(daemon.pid, _bulk(conn, nbytes))
                bulk.append((c / args.gib, s / args.gib))
                print(f"rt client {rt[-1][0]:.0f} µs server {rt[-1][1]:.0f} µs | "
                      f"GiB client {bulk[-1][0]:.2f} s server {bulk[-1][1]:.2f} s", flush=True)  # fmt: skip
            med = [statistics.median(x) for x in zip(*rt, strict=True)]
            medb = [statistics.median(x) for x in zip(*bulk, strict=True)]
            print(f"median: round trip client {med[0]:.0f} µs + server {med[1]:.0f} µs CPU; "
                  f"1 GiB client {medb[0]:.2f} s + server {medb[1]:.2f} s CPU")  # fmt: skip
            print(f"rexecd peak RSS (VmHWM) {_peak_rss_mib(daemon.pid):.1f} MiB")
            if args.profile:
                out = Path(args.profile)
                out.mkdir(parents=True, exist_ok=True)
                for name, work in (
                    ("rt", _round_trips(conn, args.rt)),
                    ("bulk", _bulk(conn, nbytes)),
                ):
                    profile = cProfile.Profile()
                    profile.enable()
                    await work
                    profile.disable()
                    text = io.StringIO()
                    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(30)
                    (out / f"client-{name}.txt").write_text(text.getvalue())
            await conn.close()
        finally:
            daemon.terminate()
            daemon.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rt", type=int, default=2000, help="round trips per repetition")
    parser.add_argument("--gib", type=float, default=1.0, help="GiB of stdout per repetition")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--profile", metavar="DIR", help="also cProfile the client side")
    asyncio.run(main(parser.parse_args()))
