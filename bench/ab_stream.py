#!/usr/bin/env python3
"""Interleaved A/B of two whole trees (client library and rexecd) on the bulk
paths: CPU per GiB of stdout, of put and of get.

    python bench/ab_stream.py --b /tmp/base-pkgs --workload stdout --gib 1 --blocks 6
    python bench/ab_stream.py --b /tmp/base-pkgs --workload put,get --gib 0.5

A is this checkout; B is a directory holding ``rexec`` and ``rexec_client``
(symlinks to another tree's ``rexec`` and ``client``, as bench/SPEED3_RESULTS.md
makes them). Each block runs one worker process per side, alternating A B A B;
the worker puts its side first on ``PYTHONPATH`` (ahead of any installed
rexec), starts that side's rexecd, warms up, and measures one workload: the
client's CPU (``getrusage``) and the daemon's (``/proc/PID/stat``), each per
GiB, and the wall time (noise on a shared machine). Transfers use files on
/dev/shm, and every result is checked (bytes counted, digests compared). The
load average is printed with the medians: CPU figures are comparable only
within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


def _daemon_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Discard:
    """A sink for ``OutputReader.copy_to`` that keeps nothing."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def worker(workload: str, nbytes: int) -> dict:
    """One measurement with the trees on ``sys.path`` (run in a fresh process)."""
    import asyncio

    import rexec_client
    from rexec.keyfile import load_key
    from rexec_client.transfer import get, put

    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        work = Path(tmp)
        key_file = work / "key"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "rexec.daemon", "--port", "0", "--key-file", str(key_file),
             "--audit-log", "/dev/null", "--state-dir", str(work / "records")],
            # cwd: ``-m`` puts the working directory ahead of PYTHONPATH: run
            # from a checkout, both sides' daemons were that checkout's.
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=work,
        )  # fmt: skip
        try:
            assert daemon.stdout is not None
            port = 0
            for _ in range(50):  # bounded: rexecd prints a few lines before listening
                line = daemon.stdout.readline().decode()
                if line.startswith("rexecd listening on "):
                    port = int(line.rsplit(":", 1)[1])
                    break
            if not port:
                raise RuntimeError("rexecd did not start")
            source = work / "source"
            if workload != "stdout":
                with open(source, "wb") as f:
                    for _ in range(nbytes // MiB):
                        f.write(os.urandom(MiB))
            expected = _file_digest(source) if workload != "stdout" else ""

            async def once(target: Path) -> None:
                conn = await rexec_client.connect("127.0.0.1", port, load_key(key_file))
                async with conn:
                    if workload == "stdout":
                        proc = await conn.start(["head", "-c", str(nbytes), "/dev/zero"])
                        got = await proc.stdout.copy_to(_Discard())  # 1 MiB reads
                        await proc.wait()
                        if got != nbytes:
                            raise RuntimeError(f"read {got} of {nbytes} bytes")
                    elif workload == "put":
                        await put(conn, str(source), str(target))
                    else:
                        await get(conn, str(source), str(target))

            asyncio.run(once(work / "warm"))
            (work / "warm").unlink(missing_ok=True)
            server, client, wall = _daemon_cpu(daemon.pid), _own_cpu(), time.perf_counter()
            asyncio.run(once(work / "copy"))
            wall = time.perf_counter() - wall
            client, server = _own_cpu() - client, _daemon_cpu(daemon.pid) - server
            # Checked after the measurement: the bench's own hashing is not the client's.
            if workload != "stdout" and _file_digest(work / "copy") != expected:
                raise RuntimeError("the copy differs from the source")
            gib = nbytes / (1 << 30)
            return {
                "client": client / gib,
                "server": server / gib,
                "mb_s": nbytes / wall / 1e6,
                "client_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "server_rss": _peak_rss_mib(daemon.pid),
            }
        finally:
            daemon.terminate()
            daemon.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--b", required=True, help="dir with B's rexec and rexec_client")
    parser.add_argument("--a", default=None, help="dir with A's (default: this checkout)")
    parser.add_argument("--workload", default="stdout", help="stdout, put, get (comma-separated)")
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "BYTES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return
    a_path = args.a or _checkout_packages()
    sides = {"A": a_path, "B": str(Path(args.b).resolve())}
    nbytes = int(args.gib * (1 << 30)) // MiB * MiB
    for workload in args.workload.split(","):
        results: dict[str, list[dict]] = {"A": [], "B": []}
        loads = []
        for block in range(args.blocks):
            for side in ("A", "B") if block % 2 == 0 else ("B", "A"):
                env = dict(os.environ, PYTHONPATH=sides[side])
                out = subprocess.run(
                    [sys.executable, __file__, "--b", "-", "--worker", workload, str(nbytes)],
                    env=env, capture_output=True, text=True, timeout=600,
                )  # fmt: skip
                if out.returncode:
                    sys.exit(f"{workload} {side} failed:\n{out.stderr}")
                results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
                loads.append(os.getloadavg()[0])
                r = results[side][-1]
                print(f"{workload} {side}: client {r['client']:.3f} server {r['server']:.3f} "
                      f"CPU-s/GiB, {r['mb_s']:.0f} MB/s, peak RSS client {r['client_rss']:.0f} "
                      f"server {r['server_rss']:.0f} MiB", flush=True)  # fmt: skip
        med = {
            side: {k: statistics.median(r[k] for r in rows) for k in ("client", "server", "mb_s")}
            for side, rows in results.items()
        }
        a, b = med["A"], med["B"]
        print(f"== {workload}, {args.blocks} blocks of {nbytes / MiB:.0f} MiB, load "
              f"{min(loads):.1f}-{max(loads):.1f}: CPU-s per GiB client B {b['client']:.3f} → A "
              f"{a['client']:.3f}, server B {b['server']:.3f} → A {a['server']:.3f}; "
              f"wall B {b['mb_s']:.0f} → A {a['mb_s']:.0f} MB/s", flush=True)  # fmt: skip
        for side, rows in results.items():
            print(f"   peak RSS in {side}: client {max(r['client_rss'] for r in rows):.0f} MiB, "
                  f"rexecd {max(r['server_rss'] for r in rows):.0f} MiB")  # fmt: skip


def _checkout_packages() -> str:
    """A directory with this checkout's ``rexec`` and ``rexec_client``."""
    packages = Path(tempfile.mkdtemp(prefix="rexec-ab-a-"))
    (packages / "rexec").symlink_to(HERE.parent / "rexec")
    (packages / "rexec_client").symlink_to(HERE.parent / "client")
    return str(packages)


if __name__ == "__main__":
    main()
