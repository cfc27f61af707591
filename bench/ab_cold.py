#!/usr/bin/env python3
"""Interleaved A/B of the CPU a cold ``rexec`` costs: whole processes of two
trees' client, one after the other, against one rexecd.

    python bench/ab_cold.py --b /tmp/base-pkgs [--runs 20] [-- run HOST true ...]

A is this checkout; B is a directory holding ``rexec`` and ``rexec_client``
(symlinks to another tree's ``rexec`` and ``client``, as for
``bench/ab_stream.py``). The bytecode of both trees is written first, as an
installed copy has it (``bench/session_rows.py``). Each run is ``python -c
"from rexec_client.cli import main; ..." run --key-file KEY 127.0.0.1:PORT
true`` (or the subcommand given after ``--``, where ``{address}`` and
``{key}`` stand for the daemon's), started fresh with its side first on
``PYTHONPATH``, in the order A B, B A, A B …; its CPU is the user + system
time ``wait4`` reports. Printed: each side's median and minimum CPU and wall
time, the ratio of the medians, the load average and how busy the machine's
CPUs were meanwhile (this benchmark's own processes included): CPU figures
are comparable only within one run.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ab_stream import _checkout_packages
from run import start_listening_process, stop_process

TICK = os.sysconf("SC_CLK_TCK")
CLI = "import sys; from rexec_client.cli import main; sys.exit(main())"


def _busy_ticks() -> int:
    """CPU ticks spent in user, nice, system, irq and softirq, machine-wide."""
    with open("/proc/stat") as f:
        fields = [int(value) for value in f.readline().split()[1:]]
    return fields[0] + fields[1] + fields[2] + fields[5] + fields[6]


def _cold_run(packages: str, argv: list[str]) -> tuple[float, float]:
    """CPU seconds and wall seconds of one ``rexec ARGV`` of the tree in
    ``packages``, from interpreter start to exit."""
    env = dict(os.environ, PYTHONPATH=packages)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, *argv],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"rexec {' '.join(argv)} failed with {os.waitstatus_to_exitcode(status)}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--b", required=True, help="dir with B's rexec and rexec_client")
    parser.add_argument("--a", default=None, help="dir with A's (default: this checkout)")
    parser.add_argument("--runs", type=int, default=20, help="runs of each side")
    parser.add_argument("command", nargs="*", help="the rexec command line (default: run true)")
    args = parser.parse_args()
    sides = {"A": args.a or _checkout_packages(), "B": str(Path(args.b).resolve())}
    for packages in sides.values():
        for package in ("rexec", "rexec_client"):
            compileall.compile_dir(Path(packages, package).resolve(), quiet=1)
    with tempfile.TemporaryDirectory(prefix="rexec-ab-cold-") as work:
        key = Path(work) / "key"
        key.write_text(os.urandom(32).hex() + "\n")
        key.chmod(0o600)
        env = dict(os.environ, PYTHONPATH=sides["A"])
        daemon, host, port = start_listening_process(
            [sys.executable, "-m", "rexec.daemon", "--port", "0", "--key-file", str(key),
             "--audit-log", str(Path(work) / "audit.jsonl")],
            env=env,
        )  # fmt: skip
        try:
            template = args.command or ["run", "--key-file", "{key}", "{address}", "true"]
            argv = [word.format(key=key, address=f"{host}:{port}") for word in template]
            _measure(sides, argv, args.runs)
        finally:
            stop_process(daemon)


def _measure(sides: dict[str, str], argv: list[str], runs: int) -> None:
    for packages in sides.values():  # page both trees in once, untimed
        _cold_run(packages, argv)
    cpu: dict[str, list[float]] = {"A": [], "B": []}
    wall: dict[str, list[float]] = {"A": [], "B": []}
    load_before, busy_before, started = os.getloadavg()[0], _busy_ticks(), time.monotonic()
    for run in range(runs):
        for side in ("A", "B") if run % 2 == 0 else ("B", "A"):
            seconds, elapsed = _cold_run(sides[side], argv)
            cpu[side].append(seconds)
            wall[side].append(elapsed)
    busy = (_busy_ticks() - busy_before) / TICK / (time.monotonic() - started)
    print(f"rexec {' '.join(argv)}: {runs} cold runs of each side, interleaved")
    for side in ("A", "B"):
        print(
            f"  {side}: CPU median {statistics.median(cpu[side]) * 1e3:.1f} ms "
            f"(min {min(cpu[side]) * 1e3:.1f}), wall median "
            f"{statistics.median(wall[side]) * 1e3:.1f} ms (min {min(wall[side]) * 1e3:.1f})"
        )
    ratio = statistics.median(cpu["A"]) / statistics.median(cpu["B"])
    print(
        f"  A/B CPU {ratio:.3f}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}, "
        f"CPUs busy {busy:.2f} of {os.cpu_count()} (these runs included)"
    )


if __name__ == "__main__":
    main()
