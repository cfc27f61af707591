#!/usr/bin/env python3
"""The audit writer's cost per command: this tree's rexecd against another
tree's (``--baseline DIR``, e.g. an export of an older commit), measured in
turns so that both see the same machine.

    git archive <commit> | tar -x -C /tmp/baseline
    python bench/audit_bench.py --baseline /tmp/baseline [--turns 6] [--audit file|devnull]

Each turn measures, for each tree: the warm ``true`` round trip (median of
400 sequential runs on one connection), ``true`` at 16 concurrent
connections for 3 s, and the daemon's own CPU time per command during that
(its threads, not its commands' processes: the least disturbed by other jobs
on a shared machine). The audit log is a real file on the temporary directory's
disk by default (every command writes its records there), ``/dev/null`` with
``--audit devnull``. Prints medians over the turns and the ratio per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from run import (  # noqa: E402 -- the bench's own helpers, importable after the path set-up
    CONCURRENCY,
    TRUE,
    ForeignCpu,
    async_concurrent,
    start_listening_process,
    stop_process,
    wait_for_quiet,
)

RT_RUNS = 400
CONC_SECONDS = 3.0


def _own_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads, none of its children), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    def __init__(self, name: str, tree: Path, directory: Path, audit: str) -> None:
        self.name, self.tree, self.directory, self.audit = name, tree, directory, audit

    async def start(self) -> None:
        from rexec_fast_client import FastClient

        self.directory.mkdir(parents=True)
        audit_log = str(self.directory / "audit.jsonl") if self.audit == "file" else "/dev/null"
        env = dict(os.environ, PYTHONPATH=str(self.tree))
        self.proc, host, port = start_listening_process(
            [sys.executable, "-m", "rexec.daemon", "--port", "0", "--key-file",
             str(self.directory / "key"), "--audit-log", audit_log],
            env=env, pattern=b"rexecd listening on ",
        )  # fmt: skip
        key = bytes.fromhex((self.directory / "key").read_text().strip())
        self.clients = [await FastClient.connect(host, port, key) for _ in range(CONCURRENCY)]

    async def round_trip(self) -> float:
        client = self.clients[0]
        for _ in range(20):
            await client.run(TRUE)
        times = []
        for _ in range(RT_RUNS):
            start = asyncio.get_running_loop().time()
            await client.run(TRUE)
            times.append(asyncio.get_running_loop().time() - start)
        return statistics.median(times) * 1e3

    async def concurrent(self) -> tuple[float, float]:
        """Commands per second, and the daemon's CPU microseconds per command."""
        before = _own_cpu(self.proc.pid)
        start = asyncio.get_running_loop().time()
        rate = await async_concurrent(
            [(lambda c=c: c.run(TRUE)) for c in self.clients], CONC_SECONDS
        )
        commands = rate * (asyncio.get_running_loop().time() - start)
        return rate, (_own_cpu(self.proc.pid) - before) / max(commands, 1) * 1e6

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        stop_process(self.proc)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        daemons = [
            Daemon("this tree", ROOT, Path(tmp) / "this", args.audit),
            Daemon("baseline", args.baseline.resolve(), Path(tmp) / "baseline", args.audit),
        ]
        for daemon in daemons:
            await daemon.start()
        results: dict[str, dict[str, list[float]]] = {
            d.name: {"rt": [], "conc": [], "cpu": []} for d in daemons
        }
        foreign: list[float] = []
        try:
            for turn in range(args.turns):
                order = daemons if turn % 2 == 0 else daemons[::-1]
                for metric in ("rt", "conc"):
                    for daemon in order:
                        await wait_for_quiet(0.15, 10.0)
                        with ForeignCpu() as cpu:
                            if metric == "rt":
                                value, extra = await daemon.round_trip(), ""
                            else:
                                value, per_command = await daemon.concurrent()
                                results[daemon.name]["cpu"].append(per_command)
                                extra = f", daemon CPU {per_command:.0f} µs/command"
                        foreign.append(cpu.cpus)
                        results[daemon.name][metric].append(value)
                        print(
                            f"turn {turn + 1} {metric:4} {daemon.name:9} {value:8.2f}{extra}"
                            f"  (other jobs: {cpu.cpus:.2f} CPU)",
                            flush=True,
                        )
        finally:
            for daemon in daemons:
                daemon.stop()
    this, base = results["this tree"], results["baseline"]
    print(
        f"\naudit log: {args.audit}; {args.turns} turns; other jobs at most {max(foreign):.2f} CPU"
    )
    for metric, unit in (("rt", "ms"), ("conc", "/s"), ("cpu", "µs/command")):
        ratios = [a / b for a, b in zip(this[metric], base[metric], strict=True)]
        print(
            f"{metric:4}: this tree {statistics.median(this[metric]):.2f} {unit}, baseline "
            f"{statistics.median(base[metric]):.2f} {unit}; ratio per turn median "
            f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other tree (its root)")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--audit", choices=("file", "devnull"), default="file")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
