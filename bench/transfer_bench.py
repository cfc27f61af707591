#!/usr/bin/env python3
"""put/get throughput of rexec against scp and sftp, in one run on one machine.

    python bench/transfer_bench.py [--size 512M] [--reps 3] [--json out.json]

One ``--size`` file of random bytes on /dev/shm (tmpfs, both ends: no disk
is measured) is put and got by each row, every repetition running every row
in a rotating order; the table shows medians of the repetitions, and ratios
to scp taken within each repetition. Rows:

* ``rexec`` CLI, ``rexec put``/``rexec get`` as a whole process (start-up,
  connect, transfer, fsync, rename), as scp is measured;
* ``rexec`` library, ``rexec_client.transfer.put``/``get`` on an open
  connection, in a worker process (the transfer's own time);
* ``rexec`` CLI reading a pipe (``cat FILE | rexec put HOST - DST``: size
  and digest unknown until the end), put only;
* OpenSSH ``scp`` and ``sftp -b`` to a local sshd of the benchmark's own
  (``bench/local_sshd.py``; needs ``apt-get install openssh-server``).

Peak RSS of the client (its process tree) and of the server (rexecd; sshd
with its session processes) is sampled every 10 ms; CPU seconds of both are
counted. Other jobs' CPU is watched as in ``run.py``: a measurement during
which they used more than ``--max-foreign`` CPUs is retaken once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from interactive_bench import (  # noqa: E402
    Guard,
    MiB,
    Servers,
    TransferRow,
    fmt_ratio,
    make_file,
    med,
    parse_size,
    ratio,
    sha256_rate,
)
from run import warm_memory  # noqa: E402

REMOTE = "root@127.0.0.1:"


def rows(servers: Servers, work: Path) -> list[TransferRow]:
    s = servers

    def rexec_cli(direction: str, src: Path, dst: Path) -> list[str]:
        return s.rexec(direction, "-q", s.address, str(src), str(dst))

    def rexec_lib(direction: str, src: Path, dst: Path) -> list[str]:
        return [sys.executable, __file__, "_lib", direction, s.host, str(s.port),
                str(s.key_file), str(src), str(dst)]  # fmt: skip

    def rexec_pipe(direction: str, src: Path, dst: Path) -> list[str]:
        cli = " ".join(shlex.quote(a) for a in s.rexec("put", "-q", s.address, "-", str(dst)))
        return ["sh", "-c", f"cat {shlex.quote(str(src))} | {cli}"]

    def scp(direction: str, src: Path, dst: Path) -> list[str]:
        return s.scp(str(src), REMOTE + str(dst)) if direction == "put" else s.scp(
            REMOTE + str(src), str(dst))  # fmt: skip

    def sftp(direction: str, src: Path, dst: Path) -> list[str]:
        batch = work / "sftp.batch"
        batch.write_text(f"{direction} {src} {dst}\n")
        return s.sftp(batch)

    def rexecd() -> int:
        return s.rexecd.pid

    def sshd() -> int:
        return s.sshd.process.pid

    return [
        TransferRow("rexec-cli", "**rexec** CLI (whole process)", rexec_cli, s.rexecd_pids, rexecd),
        TransferRow(
            "rexec-lib",
            "**rexec** library (open connection)",
            rexec_lib,
            s.rexecd_pids,
            rexecd,
            inner=True,
        ),  # fmt: skip
        TransferRow(
            "rexec-pipe",
            "**rexec** CLI, put from a pipe (`cat F | rexec put H - D`)",
            rexec_pipe,
            s.rexecd_pids,
            rexecd,
        ),  # fmt: skip
        TransferRow("scp", "OpenSSH `scp` (whole process)", scp, s.sshd_pids, sshd),
        TransferRow("sftp", "OpenSSH `sftp -b` (whole process)", sftp, s.sshd_pids, sshd),
    ]


def lib_worker(direction: str, host: str, port: str, key_file: str, src: str, dst: str) -> int:
    """``_lib``: one library transfer on an open connection; prints its time,
    this process's CPU and its peak RSS (VmHWM) as JSON."""
    import resource

    import rexec_client
    from rexec.keyfile import load_key
    from rexec_client.transfer import get, put

    async def go() -> float:
        conn = await rexec_client.connect(host, int(port), load_key(key_file))
        async with conn:
            transfer = put(conn, src, dst) if direction == "put" else get(conn, src, dst)
            return (await transfer).seconds

    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = asyncio.run(go())
    after = resource.getrusage(resource.RUSAGE_SELF)
    hwm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text()
               .splitlines() if line.startswith("VmHWM:"))  # fmt: skip
    print(json.dumps({
        "seconds": seconds,
        "hash_seconds": 0.0,  # no hashing pass: the digest is computed as the bytes stream
        "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "maxrss": hwm,
    }))  # fmt: skip
    return 0


def report(meta: dict, table_rows: list[TransferRow], results: dict) -> str:
    size = f"{meta['size'] / MiB:,.0f} MiB"
    lines = [
        f"### put/get of {size} (random bytes, /dev/shm to /dev/shm), MB/s = 10^6 B/s, "
        f"median of {meta['reps']} interleaved repetitions",
        "",
        "| | put MB/s | get MB/s | put vs scp | get vs scp | client CPU-s put / get "
        "| server CPU-s put / get | client peak RSS | server peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def column(name: str, direction: str, key: str) -> list:
        return [r[key] if r else None for r in results.get((direction, name), [])]

    def shown(value: float | None) -> str:
        return "—" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.2f}"

    for row in table_rows:
        done = [r for d in ("put", "get") for r in results.get((d, row.name), []) if r]
        if not done:
            continue
        cells = [row.label]
        cells += [shown(med(column(row.name, d, "mb_s"))) for d in ("put", "get")]
        for d in ("put", "get"):
            mine, scp = column(row.name, d, "mb_s"), column("scp", d, "mb_s")
            cells.append("—" if row.name == "scp" or not mine else fmt_ratio(ratio(mine, scp)))
        for key in ("cpu", "server_cpu"):
            cells.append(" / ".join(shown(med(column(row.name, d, key))) for d in ("put", "get")))
        for key in ("maxrss", "server_peak"):
            cells.append(f"{max(r[key] for r in done) / MiB:,.0f} MiB")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Machine: {meta['nproc']} CPUs, Linux {meta['kernel']}, Python {meta['python']}, "
        f"{meta['ssh']}; sha256 alone (hashlib, one thread): {meta['sha256_mb_s']:,.0f} MB/s. "
        f"Other jobs used at most {meta['foreign_max']:.2f} CPU during a kept measurement.",
    ]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_lib":
        return lib_worker(*sys.argv[2:8])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=512 * MiB, help="default 512M")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--json", type=Path, help="write every raw measurement here")
    parser.add_argument("--max-foreign", type=float, default=0.15)
    args = parser.parse_args()
    guard_args = argparse.Namespace(max_foreign=args.max_foreign, retries=1, quiet_wait=5.0,
                                    budget=900.0)  # fmt: skip
    guard = Guard(guard_args, time.monotonic())
    meta = {
        "size": args.size, "reps": args.reps, "nproc": os.cpu_count(),
        "kernel": platform.release(), "python": platform.python_version(),
        "ssh": __import__("subprocess").run(["ssh", "-V"], capture_output=True,
                                            text=True).stderr.strip(),
        "sha256_mb_s": sha256_rate(),
    }  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="rexec-tbench-", dir="/dev/shm"))
    servers = Servers(tmp)
    results: dict[tuple[str, str], list] = {}
    try:
        servers.start()
        src = tmp / "source.bin"
        make_file(src, args.size)
        out = tmp / "out"
        out.mkdir()
        table_rows = rows(servers, tmp)
        print(f"warming memory: {warm_memory(3.0):.1f} s for 3 GiB", file=sys.stderr, flush=True)
        for rep in range(args.reps):
            warm_memory(1.5)
            k = rep % len(table_rows)
            for direction in ("put", "get"):
                for row in table_rows[k:] + table_rows[:k]:
                    if direction == "get" and row.name == "rexec-pipe":
                        continue
                    dst = out / f"{direction}-{row.name}.bin"
                    try:

                        def once(row=row, d=direction, dst=dst) -> dict:  # noqa: ANN001
                            return row.transfer(d, src, dst, args.size)

                        r, foreign = guard.measure(f"{direction}/{row.name}/rep{rep + 1}", once)
                        r["foreign"] = foreign
                        line = (f"{r['mb_s']:,.0f} MB/s, CPU client {r['cpu']:.2f} s server "
                                f"{r['server_cpu']:.2f} s, peak RSS client {r['maxrss'] / MiB:.0f}"
                                f" MiB server {r['server_peak'] / MiB:.0f} MiB")  # fmt: skip
                    except Exception as exc:  # noqa: BLE001 - one failure must not sink the run
                        r, line = None, f"FAILED: {exc!r}"[:300]
                    finally:
                        for p in out.iterdir():
                            p.unlink()
                    results.setdefault((direction, row.name), []).append(r)
                    print(f"rep {rep + 1}/{args.reps} {direction} {row.name:10} {line}",
                          file=sys.stderr, flush=True)  # fmt: skip
    finally:
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    meta["foreign_max"] = max((e["foreign_cpus"] for e in guard.log), default=0.0)
    print(report(meta, table_rows, results))
    if args.json:
        args.json.write_text(json.dumps(
            {"meta": meta, "results": {f"{d}/{n}": v for (d, n), v in results.items()}},
            indent=1, default=str,
        ))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
