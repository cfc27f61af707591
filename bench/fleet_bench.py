"""``rexec batch`` at 1,000 and 10,000 servers, against the fleet emulator.

    python bench/fleet_bench.py                  # everything (~3–6 min on 2 CPUs)
    python bench/fleet_bench.py --only onall     # or spread, fanout, handshake
    python bench/fleet_bench.py --json out.json  # also every figure, raw

What it measures (client and emulator share this machine's CPUs):

* ``onall``: ``rexec batch --onall -w HOSTS -- hostname`` over 10,000
  emulated servers, two of them down, and the same with ``-b``: wall time,
  client CPU (per server), client peak RSS and descriptors, the emulator's
  CPU; every one of the 9,998 answers is checked (``host: nodeNNNNN``) and
  the two failures must be named.
* ``spread``: 100,000 jobs (``seq 100000 | rexec batch -- echo``) over
  1,000 emulated servers, at ``-j 64`` and at ``-j 1000 -f 1000`` (every
  server in use): the same figures, the servers used, and the joblog and
  output must hold each of the 100,000 jobs exactly once, succeeded.
* ``fanout``: the 10,000-server ``--onall`` at ``-f`` 64, 256 and 1,024.
* ``handshake``: client and emulator CPU per connection over 2,000
  servers, 32 at a time, for a bare TCP connect (reading ``hello``), the
  rexec handshake on plain TCP (HMAC alone), on TLS, and on TLS resumed
  (each server reconnected with the session of its first connection). The
  handshake's own cost is the difference from the bare connect.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import re
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from fleet_measure import Emulator, Run, measure, rexec_batch

from rexec.keyfile import load_key
from rexec.protocol import HEADER_LENGTH  # struct "<i"
from rexec_client import connect

ONALL_SERVERS = 10_000
DOWN = (17, 342)
SPREAD_SERVERS = 1_000
SPREAD_JOBS = 100_000
HANDSHAKE_SERVERS = 2_000
HANDSHAKE_CONCURRENCY = 32
_PORT = re.compile(r":\d+")


def figures(run: Run, servers: int, emulator_cpu: float) -> dict[str, float]:
    return {
        "wall_s": round(run.seconds, 2),
        "client_cpu_s": round(run.cpu, 2),
        "client_cpu_per_server_ms": round(1000 * run.cpu / servers, 3),
        "client_peak_rss_mib": round(run.rss_mib, 1),
        "client_peak_fds": run.peak_fds,
        "emulator_cpu_s": round(emulator_cpu, 2),
        "exit": run.status,
    }


# --- onall over 10,000 ---------------------------------------------------------------


def onall(directory: Path, fanouts: tuple[int | None, ...] = (None,)) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    down = ",".join(map(str, DOWN))
    with Emulator(ONALL_SERVERS, "--down", down) as fleet:
        for fanout in fanouts:
            extra = ("-f", str(fanout)) if fanout else ()
            out = directory / "onall.out"
            before = fleet.cpu()
            with open(out, "wb") as stdout:
                run = measure(
                    rexec_batch(
                        "--key-file",
                        fleet.key_file,
                        "-w",
                        fleet.hosts,
                        "--onall",
                        *extra,
                        "--",
                        "hostname",
                    ),
                    stdout=stdout,
                )
            row = figures(run, ONALL_SERVERS, fleet.cpu() - before)
            row["checked"] = check_onall(fleet, out.read_text(), run.stderr)
            name = f"onall hostname × {ONALL_SERVERS:,}" + (f", -f {fanout}" if fanout else "")
            rows[name] = row
        if fanouts == (None,):
            before = fleet.cpu()
            with open(directory / "onall-b.out", "wb") as stdout:
                run = measure(
                    rexec_batch(
                        "--key-file",
                        fleet.key_file,
                        "-w",
                        fleet.hosts,
                        "--onall",
                        "-b",
                        "--",
                        "echo",
                        "hello",
                    ),
                    stdout=stdout,
                )
            row = figures(run, ONALL_SERVERS, fleet.cpu() - before)
            text = (directory / "onall-b.out").read_text()
            row["output"] = text.splitlines()
            row["summary"] = run.stderr.splitlines()
            rows[f"onall -b echo hello × {ONALL_SERVERS:,}"] = row
    return rows


def check_onall(fleet: Emulator, output: str, stderr: str) -> str:
    expected = {
        f"{fleet.host(i)}: node{i:05d}" for i in range(1, ONALL_SERVERS + 1) if i not in DOWN
    }
    got = output.splitlines()
    problems = []
    if len(got) != len(expected) or set(got) != expected:
        problems.append(f"{len(set(got) & expected)} of {len(expected)} answers right")
    down = ",".join(fleet.host(i) for i in DOWN)
    if f"  {down}: connection refused (2 connect_error; jobs 1)" not in stderr:
        problems.append(f"the two down servers are not named: {stderr!r}")
    return "; ".join(problems) or f"all {len(expected):,} answers right, both failures named"


# --- 100,000 jobs over 1,000 ---------------------------------------------------------------


def spread(directory: Path) -> dict[str, dict]:
    """Twice: at ``-j 64`` (the least-loaded policy keeps to 64 warm
    servers) and at ``-j 1000 -f 1000`` (every server in use at once)."""
    numbers = directory / "numbers"
    numbers.write_text("".join(f"{i}\n" for i in range(1, SPREAD_JOBS + 1)))
    rows: dict[str, dict] = {}
    with Emulator(SPREAD_SERVERS) as fleet:
        for jobs, fanout in ((64, None), (SPREAD_SERVERS, SPREAD_SERVERS)):
            extra = ("-f", str(fanout)) if fanout else ()
            log, out = directory / f"spread-{jobs}.log", directory / f"spread-{jobs}.out"
            before = fleet.cpu()
            with open(numbers, "rb") as stdin, open(out, "wb") as stdout:
                run = measure(
                    rexec_batch(
                        "--key-file",
                        fleet.key_file,
                        "-w",
                        fleet.hosts,
                        "-j",
                        str(jobs),
                        *extra,
                        "--joblog",
                        str(log),
                        "--",
                        "echo",
                    ),
                    stdin=stdin,
                    stdout=stdout,
                )
            row = figures(run, SPREAD_SERVERS, fleet.cpu() - before)
            row["jobs_per_s"] = round(SPREAD_JOBS / run.seconds)
            row["client_cpu_per_job_ms"] = round(1000 * run.cpu / SPREAD_JOBS, 3)
            row.update(check_spread(log, out))
            rows[
                f"spread {SPREAD_JOBS:,} × echo over {SPREAD_SERVERS:,}, -j {jobs}"
                + (f" -f {fanout}" if fanout else "")
            ] = row
    return rows


def check_spread(log: Path, out: Path) -> dict[str, object]:
    """Every job once in the joblog and the output, succeeded; the servers used."""
    rows = [line.split("\t") for line in log.read_text().splitlines()[1:]]
    ids = sorted(int(r[0]) for r in rows)
    ok = all(r[6] == "0" and r[7] == "0" for r in rows)
    printed = sorted(int(line) for line in out.read_text().split())
    complete = ids == printed == list(range(1, SPREAD_JOBS + 1))
    return {
        "servers_used": len({r[1] for r in rows}),
        "checked": (
            f"all {SPREAD_JOBS:,} jobs logged once, succeeded, output once"
            if complete and ok
            else f"{len(set(ids))} ids, ok={ok}, output {len(printed)}"
        ),
    }


# --- handshake CPU -------------------------------------------------------------------------

#: The server a connection is for, so that the context can hand it its session.
_current_target: contextvars.ContextVar[str] = contextvars.ContextVar("target")


class ResumingContext(ssl.SSLContext):
    """A client context that offers each server the session of its previous
    connection (asyncio has no ``session`` argument: it is added here)."""

    sessions: dict[str, ssl.SSLSession]

    def wrap_bio(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("session", self.sessions.get(_current_target.get("")))
        return super().wrap_bio(*args, **kwargs)


def tls_context(ca: str) -> ResumingContext:
    context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sessions = {}
    return context


async def handshakes(fleet: Emulator, mode: str, context: ResumingContext | None) -> int:
    """Connect to every server once in ``mode``; return how many resumed."""
    key = load_key(Path(fleet.key_file))
    gate = asyncio.Semaphore(HANDSHAKE_CONCURRENCY)
    resumed = 0

    async def one(index: int) -> None:
        nonlocal resumed
        host = fleet.host(index)
        _current_target.set(host)
        async with gate:
            if mode == "tcp":
                reader, writer = await asyncio.open_connection(host, fleet.port)
                (length,) = HEADER_LENGTH.unpack(await reader.readexactly(HEADER_LENGTH.size))
                await reader.readexactly(length)
                writer.close()
                await writer.wait_closed()
                return
            conn = await connect(
                host,
                fleet.port,
                key,
                ssl=context,
                server_hostname=fleet.tls_server_name if context else None,
            )
            if context is not None:
                ssl_object = conn._writer.get_extra_info("ssl_object")
                resumed += ssl_object.session_reused
                context.sessions[host] = ssl_object.session
            await conn.close()

    await asyncio.gather(*(one(i) for i in range(1, HANDSHAKE_SERVERS + 1)))
    return resumed


def handshake(reps: int = 3) -> dict[str, dict]:
    """Each mode ``reps`` times, interleaved; medians per mode."""
    samples: dict[str, list[dict[str, float]]] = {}
    with (
        Emulator(HANDSHAKE_SERVERS) as plain,
        Emulator(HANDSHAKE_SERVERS, "--base", "127.3.0.0", "--tls") as tls,
    ):
        assert tls.tls_ca is not None
        context = tls_context(tls.tls_ca)
        for _ in range(reps):
            for mode, fleet in (
                ("tcp", plain),
                ("hmac", plain),
                ("tls full", tls),
                ("tls resumed", tls),
            ):
                if mode == "tls full":
                    context.sessions.clear()
                server_before, client_before = fleet.cpu(), time.process_time()
                started = time.perf_counter()
                resumed = asyncio.run(handshakes(fleet, mode, context if fleet is tls else None))
                wall = time.perf_counter() - started
                samples.setdefault(mode, []).append(
                    {
                        "client": 1000 * (time.process_time() - client_before) / HANDSHAKE_SERVERS,
                        "server": 1000 * (fleet.cpu() - server_before) / HANDSHAKE_SERVERS,
                        "rate": HANDSHAKE_SERVERS / wall,
                        "resumed": resumed,
                    }
                )
    medians = {
        mode: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for mode, runs in samples.items()
    }
    rows: dict[str, dict] = {}
    for mode, median in medians.items():
        row = {
            "client_cpu_per_conn_ms": round(median["client"], 3),
            "emulator_cpu_per_conn_ms": round(median["server"], 3),
            "conn_per_s": round(median["rate"]),
            "resumed": int(median["resumed"]),
        }
        if mode != "tcp":
            row["client_handshake_ms"] = round(median["client"] - medians["tcp"]["client"], 3)
            row["emulator_handshake_ms"] = round(median["server"] - medians["tcp"]["server"], 3)
        rows[f"connect + {mode}, medians of {reps}"] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("onall", "spread", "fanout", "handshake"))
    parser.add_argument("--json", type=Path, metavar="FILE")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        directory = Path(tmp)
        if args.only in (None, "onall"):
            results |= onall(directory)
        if args.only in (None, "spread"):
            results |= spread(directory)
        if args.only in (None, "fanout"):
            results |= onall(directory, (64, 256, 1024))
        if args.only in (None, "handshake"):
            results |= handshake()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}"
    )
    for name, row in results.items():
        shown = {k: v for k, v in row.items() if k not in ("output", "summary")}
        print(f"{name}\n  {json.dumps(shown)}")
        for key in ("output", "summary"):
            for line in row.get(key, []):
                print(f"  | {_PORT.sub('', line)[:160]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
