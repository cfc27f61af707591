#!/usr/bin/env python3
"""Where the CPU of a bulk transfer goes: rexecd and the benchmark client each
report CPU seconds and minor page faults per GiB of stdout.

    python bench/bulk_faults.py [--gib 1] [--reps 3]
    MALLOC_MMAP_THRESHOLD_=16777216 MALLOC_TRIM_THRESHOLD_=67108864 python bench/bulk_faults.py

The second line pins glibc's mmap threshold for both processes (the server
inherits the environment), which stops every fresh ≥128 KiB buffer from being
a new mmap that must be faulted in page by page; comparing the two lines shows
how much of the transfer's CPU is page faults rather than work (bench-notes:
touching fresh memory costs ~3 s/GiB on this kind of machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from profile_server import cpu_seconds, start_server  # noqa: E402
from rexec_fast_client import FastClient  # noqa: E402
from run import ForeignCpu, warm_memory  # noqa: E402


def minflt(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


async def measure(host, port, key, server_pid, nbytes, reps):
    client = await FastClient.connect(host, port, key)
    for _ in range(reps):
        s_cpu, s_flt = cpu_seconds(server_pid), minflt(server_pid)
        c_cpu, c_flt = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        with ForeignCpu() as foreign:
            _, out = await client.run(["head", "-c", str(nbytes), "/dev/zero"], keep_output=False)
        dt = time.perf_counter() - t
        assert out.stdout_bytes == nbytes
        gib = nbytes / 2**30
        print(
            f"{nbytes / dt / 1e6:6.0f} MB/s | server {(cpu_seconds(server_pid) - s_cpu) / gib:.2f} CPU-s/GiB, "
            f"{(minflt(server_pid) - s_flt) / gib:,.0f} faults/GiB | client "
            f"{(time.process_time() - c_cpu) / gib:.2f} CPU-s/GiB, "
            f"{(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - c_flt) / gib:,.0f} faults/GiB"
            f" | other jobs {foreign.cpus:.2f} CPU",
            flush=True,
        )
    client.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"glibc malloc environment: {env or 'default'}")
    tmp = Path(tempfile.mkdtemp(prefix="rexec-faults-"))
    proc, host, port, key = start_server(tmp, "none", tmp / "unused")
    try:
        warm_memory(2.0)
        asyncio.run(measure(host, port, key, proc.pid, int(args.gib * 2**30), args.reps))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
