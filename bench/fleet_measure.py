"""What the fleet benchmarks share: the emulator as a subprocess, and one
measured run of a client program.

``Emulator(n, *args)`` starts ``bench/fleet.py --servers n`` and reads its
first line; ``cpu()`` asks it (SIGUSR1) for its CPU seconds so far, so a
run's server-side cost is the difference; ``stop()`` ends it by its PID.

``measure(argv)`` runs a program to its end and returns its wall time, its
CPU (user + system, its reaped children included, from ``wait4``), its peak
RSS and its peak number of open descriptors, sampled every 5 ms by a thread
from ``/proc/PID/status`` (``VmHWM``) and ``/proc/PID/fd``. Not
``ru_maxrss``: Linux carries the parent's RSS at ``fork`` into the child's
``ru_maxrss`` across ``exec``, so a grown benchmark would inflate it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Self

BENCH = Path(__file__).resolve().parent
FLEET = BENCH / "fleet.py"


class Emulator:
    """A running ``bench/fleet.py``."""

    def __init__(self, servers: int, *args: str, timeout: float = 180.0) -> None:
        self.servers = servers
        self.process = subprocess.Popen(
            [sys.executable, str(FLEET), "--servers", str(servers), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            first = json.loads(self._line(timeout))
        except BaseException:
            self.stop()
            raise
        self.hosts: str = first["hosts"]
        self.key_file: str = first["key_file"]
        self.port: int = first["port"]
        self.tls_ca: str | None = first["tls_ca"]
        self.tls_server_name: str | None = first["tls_server_name"]

    def _line(self, timeout: float) -> bytes:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.process.stdout], [], [], left)[0]:
                raise RuntimeError(f"the fleet emulator said nothing in {timeout:g} s")
            byte = os.read(self.process.stdout.fileno(), 1)
            if not byte:
                assert self.process.stderr is not None
                raise RuntimeError(f"the fleet emulator exited: {self.process.stderr.read()!r}")
            line += byte
        return line

    def host(self, index: int) -> str:
        """The address of endpoint ``index`` (1-based), as ``fleet.address_of``."""
        prefix = ".".join(self.hosts.split(".")[:2])
        row, column = divmod(index - 1, 250)
        return f"{prefix}.{row}.{column + 1}"

    def stats(self) -> dict[str, float]:
        self.process.send_signal(signal.SIGUSR1)
        return json.loads(self._line(30))["stats"]  # type: ignore[no-any-return]

    def cpu(self) -> float:
        return float(self.stats()["cpu_seconds"])

    def stop(self) -> None:
        stop_processes([self.process])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclasses.dataclass
class Run:
    """One measured run of a client program."""

    seconds: float
    status: int
    cpu: float  # user + system seconds, reaped children included
    rss_mib: float
    peak_fds: int
    stderr: str


def _count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def peak_rss_kib(pid: int) -> int:
    """``VmHWM`` of ``pid`` in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(
    argv: list[str],
    *,
    stdin: IO[bytes] | int = subprocess.DEVNULL,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> Run:
    """Run ``argv`` to its end; see the module docstring."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env)
    peak_fds = peak_rss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_fds, peak_rss
        while not done.wait(0.005):
            peak_fds = max(peak_fds, _count_fds(process.pid))
            peak_rss = max(peak_rss, peak_rss_kib(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stderr is not None
    err = process.stderr.read()  # small: a summary and notes
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    return Run(
        elapsed,
        process.returncode,
        usage.ru_utime + usage.ru_stime,
        peak_rss / 1024,
        peak_fds,
        err.decode(errors="replace"),
    )


def _busy_ticks() -> tuple[int, int]:
    with open("/proc/stat") as file:
        fields = [int(v) for v in file.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_for_quiet(max_busy_cpus: float = 0.3, timeout: float = 90.0) -> float:
    """Wait until the machine's CPUs are busy less than ``max_busy_cpus`` over
    a second (servers just started settle, other jobs finish), at most
    ``timeout`` seconds; return the busy CPUs last seen."""
    deadline = time.monotonic() + timeout
    cpus = os.cpu_count() or 1
    while True:
        busy0, total0 = _busy_ticks()
        time.sleep(1.0)
        busy1, total1 = _busy_ticks()
        busy = cpus * (busy1 - busy0) / max(1, total1 - total0)
        if busy < max_busy_cpus or time.monotonic() > deadline:
            return busy


def stop_processes(processes: list[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    """SIGTERM each (by its PID), wait up to ``grace`` seconds, then SIGKILL;
    close their pipes."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def free_port(addresses: list[str]) -> int:
    """A port free on every address (found by binding, a bounded number of times)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on every address")


def rexec_batch(*args: str) -> list[str]:
    """The argv of ``rexec batch`` from this checkout's interpreter."""
    return [sys.executable, "-m", "rexec_client.cli", "batch", "--no-progress", *args]
