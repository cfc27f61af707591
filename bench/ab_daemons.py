"""Interleaved A/B of two rexecd trees: which daemon costs less per command or per GiB.

On a machine shared with other jobs wall-clock figures are noise, but two daemons
measured in alternating blocks meet the same noise, and CPU time barely depends
on it. This starts rexecd from two source trees (A: this checkout, B: ``--b``,
e.g. ``git archive main | tar -x -C /tmp/base``), both on the same key, and runs
the same workload against each in alternating blocks over the benchmark's own
client (``rexec_fast_client.py``, on this checkout's protocol). Per block it
records the wall time, the daemon's own CPU (the scheduler's nanoseconds, from
``/proc/PID/task/*/schedstat``; its children, the commands, are not counted) and the client's
CPU; it prints medians per side and the B/A ratio of each.

    python bench/ab_daemons.py --b /tmp/base --workload rt --blocks 20
    python bench/ab_daemons.py --b /tmp/base --workload conc16
    python bench/ab_daemons.py --b /tmp/base --workload bulk --bulk-mib 256
    python bench/ab_daemons.py --b . --a-env REXEC_EVENT_LOOP=uvloop --workload rt
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from rexec_fast_client import FastClient  # noqa: E402

from rexec.keyfile import load_key  # noqa: E402


def _usage_of(pid: int) -> tuple[float, int]:
    """CPU seconds and minor page faults of ``pid`` itself, its children not
    included. The CPU is the scheduler's nanosecond count summed over the
    process's threads (``/proc/PID/task/*/schedstat``): the 10 ms ticks of
    ``/proc/PID/stat`` are too coarse for a block of short commands. The
    faults are field 10 of its stat."""
    ns = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                ns += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return ns / 1e9, int(fields[7])


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Daemon:
    """rexecd from the source tree ``tree`` on a free port."""

    def __init__(
        self, tree: Path, key_file: Path, state: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        env = dict(os.environ, PYTHONPATH=str(tree), **(extra_env or {}))
        argv = [sys.executable, "-m", "rexec.daemon", "--port", "0", "--key-file", str(key_file)]
        argv += ["--audit-log", str(state / "audit.jsonl"), "--state-dir", str(state / "records")]
        self.process = subprocess.Popen(
            argv, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"rexecd from {tree} exited before listening")
            if line.startswith("rexecd listening on 127.0.0.1:"):
                self.port = int(line.rsplit(":", 1)[1])
                return
        raise RuntimeError(f"rexecd from {tree} did not listen within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _rt(clients: list[FastClient], count: int) -> int:
    for _ in range(count):
        await clients[0].run(["true"])
    return count


async def _conc16(clients: list[FastClient], count: int) -> int:
    async def worker(client: FastClient) -> None:
        for _ in range(count):
            await client.run(["true"])

    await asyncio.gather(*(worker(c) for c in clients))
    return count * len(clients)


def _bulk(size: int):
    async def run(clients: list[FastClient], _count: int) -> int:
        _, out = await clients[0].run(["head", "-c", str(size), "/dev/zero"], keep_output=False)
        if out.stdout_bytes != size:
            raise RuntimeError(f"got {out.stdout_bytes} bytes of {size}")
        return 1

    return run


async def _main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rexec-ab-"))
    key_file = tmp / "key"
    trees = {"A": REPO, "B": Path(args.b).resolve()}
    daemons: dict[str, Daemon] = {}
    try:
        for name, tree in trees.items():
            state = tmp / name
            state.mkdir()
            extra_env = dict(item.split("=", 1) for item in getattr(args, f"{name.lower()}_env"))
            daemons[name] = Daemon(tree, key_file, state, extra_env)
        key = load_key(key_file)
        n_clients = 16 if args.workload == "conc16" else 1
        clients = {
            name: [await FastClient.connect("127.0.0.1", d.port, key) for _ in range(n_clients)]
            for name, d in daemons.items()
        }
        workload = {"rt": _rt, "conc16": _conc16}.get(args.workload) or _bulk(args.bulk_mib << 20)
        per_block = args.count if args.workload != "bulk" else 1
        for name in daemons:  # warm up: validators built, pages touched
            await workload(clients[name], min(per_block, 20))
        samples: dict[str, list[tuple[float, float, float, float]]] = {"A": [], "B": []}
        for block in range(args.blocks):
            order = ["A", "B"] if block % 2 == 0 else ["B", "A"]
            for name in order:
                pid = daemons[name].process.pid
                (server0, faults0), client0 = _usage_of(pid), _own_cpu()
                wall0 = time.perf_counter()
                ops = await workload(clients[name], per_block)
                wall = time.perf_counter() - wall0
                server, faults = _usage_of(pid)
                client = _own_cpu() - client0
                server, faults = server - server0, faults - faults0
                samples[name].append((wall / ops, server / ops, client / ops, faults / ops))
        unit, scale = ("ms/op", 1e3) if args.workload != "bulk" else ("s/run", 1.0)
        print(f"workload {args.workload}, {args.blocks} blocks, load {os.getloadavg()[0]:.1f}")
        for i, what in enumerate(("wall", "server CPU", "client CPU", "srv faults")):
            if i == 3:
                unit, scale = "per op", 1.0
            a = statistics.median(s[i] for s in samples["A"])
            b = statistics.median(s[i] for s in samples["B"])
            ratios = sorted(
                sb[i] / sa[i] for sa, sb in zip(samples["A"], samples["B"], strict=True) if sa[i]
            )
            ratio = statistics.median(ratios) if ratios else float("nan")
            print(
                f"  {what:11} A {a * scale:8.3f}  B {b * scale:8.3f} {unit}   "
                f"B/A per block: median {ratio:.2f}"
            )
        for conns in clients.values():
            for c in conns:
                c.close()
    finally:
        for d in daemons.values():
            d.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--b", required=True, help="the other source tree (B)")
    parser.add_argument("--workload", choices=("rt", "conc16", "bulk"), default="rt")
    parser.add_argument("--blocks", type=int, default=20, help="blocks per side (alternating)")
    parser.add_argument("--count", type=int, default=100, help="commands per block and client")
    parser.add_argument("--bulk-mib", type=int, default=256)
    for side in ("a", "b"):
        parser.add_argument(
            f"--{side}-env", action="append", default=[], metavar="NAME=VALUE",
            help=f"an environment variable for daemon {side.upper()} (e.g. REXEC_EVENT_LOOP=uvloop)",
        )  # fmt: skip
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
