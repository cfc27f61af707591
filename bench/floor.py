#!/usr/bin/env python3
"""Issue 15's rows against their floor: the fastest a Python server and
client can be while doing what the row requires, measured in one run with
the row's reference (local spawn, cold ``ssh``, ``ssh -tt``, ``scp``/``sftp``,
the local pipe) and rexec itself.

    python bench/floor.py --reps 3 [--json out.json]     # ~5-10 min on a quiet machine
    python bench/floor.py --smoke --no-rexec            # a few seconds: tiny sizes, every row

The floors (``floor_server.py``, ``floor_client.py``, ``floor_cold.py`` on
``floor_frames.py``): frames of a 4-byte length, a JSON header validated by
one pydantic model and a body; a subprocess per command with stdout and stderr
piped and streamed back, then its exit status; SHA-256 of every transferred
byte on both ends as it passes. Where Python offers a choice, each variant is
measured and, per repetition, the fastest is the floor. Every repetition
measures every contender of every row in a rotating order, under
``run.py``'s other-jobs guard; ratios are taken within a repetition.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import floor_report
import interactive_bench as ib
import local_sshd
import run as rb
import session_rows
from floor_peers import PY, SERVERS, FloorServer, ReadyRow

MiB = 1 << 20


class Bench:
    """Every contender of every row, set up once, measured rep after rep."""

    def __init__(self, args, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.data: dict[str, dict[str, list]] = {}
        self.memory: dict[str, list[int]] = {}
        self.foreign: list[float] = []
        self.noisy: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.started = time.monotonic()
        self.load_start = floor_report.load_average()

    async def guarded(self, what: str, measure):
        """``await measure()`` under the other-jobs guard (``run.py``'s)."""
        a = self.args
        over = time.monotonic() - self.started > a.budget
        for attempt in range(1 if over else a.retries + 1):
            if not over:
                await rb.wait_for_quiet(a.max_foreign, a.quiet_wait)
            with rb.ForeignCpu() as foreign:
                value = await measure()
            if foreign.cpus <= a.max_foreign:
                break
            if attempt == a.retries or over:
                self.noisy.append(f"{what}: {foreign.cpus:.2f} CPU")
        self.foreign.append(foreign.cpus)
        return value

    def keep(self, row: str, name: str, value, log: str = "") -> None:
        self.data.setdefault(row, {}).setdefault(name, []).append(value)
        print(f"{row:5} {name:28} {log or value}", file=sys.stderr, flush=True)

    # --- set-up ---------------------------------------------------------------------------
    async def setup(self) -> None:
        a, tmp = self.args, self.tmp
        no_ssh = local_sshd.available()
        if no_ssh:
            self.skipped.append(("OpenSSH references (cold ssh, ssh -tt, scp, sftp)", no_ssh))
        session_rows._compile_like_an_install()
        self.servers = ib.Servers(tmp)
        if not no_ssh:
            self.servers.sshd = local_sshd.LocalSshd(tmp / "sshd")
            self.servers.sshd.start()
        self.peers: list[rb.Peer] = [rb.LocalSubprocess()]
        if not a.no_rexec:
            self.servers.start_rexecd()
            self.peers.append(rb.RexecLibrary())
        self.peers += [FloorServer(v) for v in SERVERS]
        for p in self.peers:
            await p.setup(tmp)
        floors = {p.name: p for p in self.peers}
        fast = floors["floor:threads+posix_spawn"]
        transfer_servers = {  # a server process per way of transferring (its --transfer)
            "plain": floors["floor:transfer-plain"],
            "threaded": fast,
            "mmap": floors["floor:transfer-mmap"],
        }
        self.cold = {
            "floor": [PY, str(rb.BENCH / "floor_cold.py"), fast.host, str(fast.port)],
            "floor-nosite": [
                PY,
                "-S",
                str(rb.BENCH / "floor_cold.py"),
                fast.host,
                str(fast.port),
                "--path",
                sysconfig.get_paths()["purelib"],
            ],
        }
        # Informative, not a floor of the row: pydantic's compiled core without pydantic.
        self.cold["core:pydantic-core only"] = self.cold["floor"] + ["--core"]
        self.cold["floor+asyncio"] = self.cold["floor"] + ["--asyncio"]
        self.cold["floor-nosite+asyncio"] = self.cold["floor-nosite"] + ["--asyncio"]
        client = [PY, str(rb.BENCH / "floor_client.py")]
        self.echo = [
            ib.LatencyRow("ref:local-pty", "", ["cat"]),
            ReadyRow("floor", "", [*client, "echo", fast.host, str(fast.port)]),
        ]
        self.xfer = [
            ib.TransferRow(
                f"floor:{v}",
                "",
                lambda d, s, t, srv=srv, v=v: [
                    *client,
                    d,
                    srv.host,
                    str(srv.port),
                    str(s),
                    str(t),
                    "--transfer",
                    v,
                ],
                srv.server_pids,
                lambda srv=srv: srv.proc.pid,
            )
            for v, srv in transfer_servers.items()
        ]
        if not no_ssh:
            self.cold["ref:ssh"] = self.servers.sshd.argv(mux=False) + ["true"]
            self.echo.append(ib.LatencyRow("ref:ssh-tt", "", self.servers.ssh_tt(["cat"])))
            refs = [r for r in ib.transfer_rows(self.servers, tmp) if r.name in ("scp", "sftp")]
            for r in refs:
                r.name = f"ref:{r.name}"
            self.xfer += refs
        if not a.no_rexec:
            s = self.servers
            self.cold["rexec"] = session_rows._rexec_console_script() + [
                "run",
                "--key-file",
                str(s.key_file),
                s.address,
                "true",
            ]
            self.echo.append(
                ib.LatencyRow("rexec", "", s.rexec("run", "-t", s.address, "--", "cat"))
            )
            self.xfer += [r for r in ib.transfer_rows(s, tmp) if r.name == "rexec-cli"]
            self.xfer[-1].name = "rexec"
        for row in self.echo:
            row.open()
        self.src = tmp / "source.bin"
        ib.make_file(self.src, a.xfer_bytes)
        (tmp / "out").mkdir()
        for argv in [] if a.smoke else self.cold.values():  # page the programs in, untimed
            session_rows._cold_once(argv)

    async def teardown(self) -> None:
        for row in getattr(self, "echo", []):
            row.close()
        for p in reversed(getattr(self, "peers", [])):
            await p.teardown()
        if hasattr(self, "servers"):
            self.servers.stop()

    # --- one repetition -------------------------------------------------------------------
    async def rep(self, k: int) -> None:
        a = self.args

        def rotate(xs):
            return xs[k % len(xs) :] + xs[: k % len(xs)]

        for metric in ("rt", "conc", "bulk"):
            if metric == "bulk":
                rb.warm_memory(min(1.5, 1.5 * a.bulk_bytes / rb.GiB))
            for p in rotate([p for p in self.peers if metric in p.metrics]):
                name = (
                    p.name
                    if p.name.startswith("floor")
                    else {"local": "ref:local"}.get(p.name, "rexec")
                )
                if metric == "rt":
                    v = await self.guarded(
                        f"rt/{name}", lambda p=p: rb.measure_rt(p, a.rt_iterations)
                    )
                    self.keep("rt", name, v / 1e3, f"{v:.3f} ms")
                elif metric == "conc":
                    v = await self.guarded(f"conc/{name}", lambda p=p: p.conc(a.conc_seconds))
                    self.keep("conc", name, v, f"{v:,.0f} /s")
                else:
                    v, peak = await self.guarded(
                        f"bulk/{name}", lambda p=p: rb.measure_bulk(p, a.bulk_bytes)
                    )
                    self.keep("bulk", name, v, f"{v:,.0f} MB/s, server {peak / MiB:.0f} MiB")
                    self.memory.setdefault(f"bulk/{name}/server", []).append(peak)
        for name, argv in rotate(list(self.cold.items())):

            async def cold(argv=argv):
                return statistics.median(session_rows._cold_once(argv) for _ in range(a.cold_runs))

            v = await self.guarded(f"cold/{name}", cold)
            self.keep("cold", name, v, f"{v * 1e3:.0f} ms")
        for row in rotate(self.echo):

            async def echo(row=row):
                return statistics.median(row.measure(a.echo_samples, 0.01))

            v = await self.guarded(f"echo/{row.name}", echo)
            self.keep("echo", row.name, v, f"{v * 1e3:.3f} ms")
        for direction in ("put", "get"):
            for row in rotate(self.xfer):
                r = await self.guarded(
                    f"{direction}/{row.name}", lambda row=row, d=direction: self.transfer(row, d)
                )
                self.keep(
                    direction,
                    row.name,
                    r["mb_s"],
                    f"{r['mb_s']:,.0f} MB/s, client {r['maxrss'] / MiB:.0f} MiB, "
                    f"server {r['server_peak'] / MiB:.0f} MiB",
                )
                self.memory.setdefault(f"{direction}/{row.name}/client", []).append(r["maxrss"])
                self.memory.setdefault(f"{direction}/{row.name}/server", []).append(
                    r["server_peak"]
                )

    async def transfer(self, row, direction: str) -> dict:
        dst = self.tmp / "out" / f"{direction}.bin"
        try:
            return row.transfer(direction, self.src, dst, self.args.xfer_bytes)
        finally:
            dst.unlink(missing_ok=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--smoke",
        action="store_true",
        help="one repetition at tiny sizes (a few seconds): checks that every row runs",
    )
    p.add_argument(
        "--no-rexec",
        action="store_true",
        help="do not measure rexec; show its figures from --results instead",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=rb.BENCH / "results.json",
        help="run.py's --json output, for rexec's figures with --no-rexec",
    )
    p.add_argument("--rt-iterations", type=int, default=400)
    p.add_argument("--conc-seconds", type=float, default=3.0)
    p.add_argument("--bulk-bytes", type=int, default=rb.GiB)
    p.add_argument("--xfer-bytes", type=int, default=512 * MiB)
    p.add_argument("--echo-samples", type=int, default=200)
    p.add_argument("--cold-runs", type=int, default=3, help="cold starts per repetition (median)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--max-foreign", type=float, default=0.15)
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--quiet-wait", type=float, default=10.0)
    p.add_argument("--budget", type=float, default=1200.0)
    args = p.parse_args(argv)
    if args.smoke:
        args.reps, args.rt_iterations, args.conc_seconds = 1, 10, 0.1
        args.bulk_bytes, args.xfer_bytes, args.echo_samples, args.cold_runs = (
            8 * MiB,
            4 * MiB,
            10,
            1,
        )
        args.budget, args.retries = 0.0, 0  # no waiting for quiet, no retakes
    return args


async def main_async(args) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="rexec-floor-", dir="/dev/shm"))
    bench = Bench(args, tmp)
    command = " ".join(["python", *sys.argv])
    try:
        await bench.setup()
        for k in range(args.reps):
            print(f"--- repetition {k + 1}/{args.reps}", file=sys.stderr, flush=True)
            await bench.rep(k)
    finally:
        await bench.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    previous = None
    if args.no_rexec and args.results.exists():
        previous = json.loads(args.results.read_text())
    print(floor_report.render(bench, args, command, previous))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "data": bench.data,
                    "memory": bench.memory,
                    "foreign": bench.foreign,
                    "noisy": bench.noisy,
                },
                indent=1,
            )
        )
    return 0


def main(argv=None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
