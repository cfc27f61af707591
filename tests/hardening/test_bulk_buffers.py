"""Bulk output costs rexecd no fresh memory per frame (issue 15): the buffers of
one frame are reused by the next, not mapped in from the kernel again.

Each 4 KiB page the kernel maps into a process is one minor page fault; with
glibc's default thresholds most 1 MiB output buffers were a fresh mapping,
about 500 faults per MiB streamed (half of rexecd's CPU per GiB). This counts
faults, not time, so other jobs on the machine don't change the verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MiB = 1024 * 1024
STREAMED = 128 * MiB


def minor_faults(pid: int) -> int:
    """The process's minor page faults so far (``/proc/PID/stat`` field 10)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])


def rexec_run(server, *argv: str) -> None:
    """``rexec run`` as a user types it, its stdout thrown away."""
    command = [sys.executable, "-m", "rexec_client.cli", "run"]
    command += ["--key-file", str(server.directory / "key"), f"{server.host}:{server.port}"]
    subprocess.run([*command, *argv], stdout=subprocess.DEVNULL, check=True, timeout=300)


def test_streaming_output_does_not_map_memory_per_frame(daemon) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    server = daemon(env=env)
    rexec_run(server, "head", "-c", str(16 * MiB), "/dev/zero")  # the heap grows to its size
    before = minor_faults(server.pid)
    rexec_run(server, "head", "-c", str(STREAMED), "/dev/zero")
    faults = minor_faults(server.pid) - before
    # A fault per page would be 32,768 for 128 MiB; reused buffers need few.
    assert faults < STREAMED // 4096 // 8, f"{faults} page faults for {STREAMED // MiB} MiB"
