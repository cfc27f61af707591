#!/usr/bin/env python3
"""Profile rexecd (and the benchmark client) under the round-trip and bulk loads.

    python bench/profile_server.py [--tool py-spy|cprofile|cprofile-cpu] [--workload rt,conc,bulk]
                                   [--rt-count 3000] [--bulk-bytes 1073741824]
                                   [--out DIR] [--client-profile]

For each workload it starts a fresh ``rexecd``, drives it with the benchmark's
own client (bench/rexec_fast_client.py) and reports:

* the server's CPU time (user+system, from /proc) per command or per GiB, next to
  the wall time, so you can tell "the server is busy" from "everyone waits";
* the top functions of the server by self and inclusive time, from py-spy
  (sampling, attached by PID, ``--nonblocking``) or from cProfile (the daemon run
  under ``python -m cProfile``; exact call counts, more overhead);
* with ``--client-profile``, the client's own top costs (cProfile, in-process).

py-spy needs ``pip install py-spy`` and ptrace permission (root, or
CAP_SYS_PTRACE in a container). Raw outputs are kept in --out.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from rexec_fast_client import FastClient  # noqa: E402
from run import start_listening_process, warm_memory  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user+system CPU of ``pid`` (not of its reaped children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_server(tmp: Path, tool: str, prof_out: Path):
    key_file = tmp / "key"
    argv = [sys.executable]
    if tool == "cprofile":
        argv += ["-m", "cProfile", "-o", str(prof_out)]
    elif tool == "cprofile-cpu":
        argv += [str(BENCH / "cpu_cprofile.py"), str(prof_out)]
    argv += [
        "-m",
        "rexec.daemon",
        "--port",
        "0",
        "--key-file",
        str(key_file),
        "--audit-log",
        "/dev/null",
    ]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc, host, port = start_listening_process(argv, env=env, pattern=b"rexecd listening on ")
    return proc, host, port, bytes.fromhex(key_file.read_text().strip())


async def drive(host, port, key, workload, rt_count, bulk_bytes):
    if workload == "conc":
        clients = [await FastClient.connect(host, port, key) for _ in range(16)]
        per = max(1, rt_count // 16)
        t0 = time.perf_counter()

        async def loop(c):
            for _ in range(per):
                await c.run(["true"])

        await asyncio.gather(*(loop(c) for c in clients))
        elapsed = time.perf_counter() - t0
        for c in clients:
            c.close()
        return elapsed
    client = await FastClient.connect(host, port, key)
    for _ in range(50):
        await client.run(["true"])
    t0 = time.perf_counter()
    if workload == "rt":
        for _ in range(rt_count):
            await client.run(["true"])
    else:
        _, out = await client.run(["head", "-c", str(bulk_bytes), "/dev/zero"], keep_output=False)
        assert out.stdout_bytes == bulk_bytes
    elapsed = time.perf_counter() - t0
    client.close()
    return elapsed


def summarize_pyspy(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample counts per function from py-spy's raw format."""
    self_c: collections.Counter[str] = collections.Counter()
    incl_c: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        # drop the "process ..."/"thread ..." pseudo-frames py-spy may prepend
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        self_c[_short(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            incl_c[f] += n
    out = [f"{total} busy samples (idle excluded)", "", "self time:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_c.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl_c.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py:123)"; keep rexec paths relative
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, lineno = where.rpartition(":")
    if "/rexec/" in path:
        path = "rexec/" + path.split("/rexec/", 1)[1]
    else:
        path = "/".join(path.split("/")[-2:])
    return f"{name} ({path})"


def summarize_cprofile(path: Path, top: int = 30) -> str:
    s = io.StringIO()
    st = pstats.Stats(str(path), stream=s)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    return s.getvalue()


def profile_one(workload, args, out: Path) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="rexec-prof-"))
    prof_out = out / f"server-{workload}.prof"
    proc, host, port, key = start_server(tmp, args.tool, prof_out)
    spy = None
    report = [f"## workload {workload} ({args.tool})"]
    try:
        if workload == "bulk":
            warm_memory(1.5)
        if args.tool == "py-spy":
            raw = out / f"server-{workload}.pyspy.txt"
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--rate",
                    str(args.rate),
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)  # let it attach
        cpu0 = cpu_seconds(proc.pid)
        ccpu0 = time.process_time()
        client_prof = cProfile.Profile() if args.client_profile else None
        if client_prof:
            client_prof.enable()
        elapsed = asyncio.run(drive(host, port, key, workload, args.rt_count, args.bulk_bytes))
        if client_prof:
            client_prof.disable()
        cpu = cpu_seconds(proc.pid) - cpu0
        ccpu = time.process_time() - ccpu0
        if workload == "conc":
            n = max(1, args.rt_count // 16) * 16
            report.append(
                f"{n} `true` from 16 concurrent clients: {n / elapsed:.0f} /s, "
                f"server CPU {cpu / n * 1e3:.3f} ms per command ({100 * cpu / elapsed:.0f}% of one CPU)"
            )
        elif workload == "rt":
            report.append(
                f"{args.rt_count} sequential `true`: {elapsed / args.rt_count * 1e3:.3f} ms per command wall, "
                f"server CPU {cpu / args.rt_count * 1e3:.3f} ms per command ({100 * cpu / elapsed:.0f}% of one CPU)"
            )
        else:
            report.append(
                f"{args.bulk_bytes / 2**20:.0f} MiB of stdout: {args.bulk_bytes / elapsed / 1e6:.0f} MB/s, "
                f"server CPU {cpu:.2f} s over {elapsed:.2f} s wall ({100 * cpu / elapsed:.0f}% of one CPU)"
            )
        report.append(
            f"client (this process) CPU {ccpu:.2f} s over {elapsed:.2f} s wall"
            + (" (inflated by cProfile)" if client_prof else "")
        )
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.tool == "py-spy":
        raw = out / f"server-{workload}.pyspy.txt"
        if raw.exists():
            report.append("```\n" + summarize_pyspy(raw) + "\n```")
        else:
            report.append(
                f"py-spy wrote nothing: {spy.stderr.read().decode()[-500:] if spy else ''}"
            )
    elif prof_out.exists():
        text = summarize_cprofile(prof_out)
        (out / f"server-{workload}.cprofile.txt").write_text(text)
        report.append("```\n" + text + "\n```")
    if client_prof:
        s = io.StringIO()
        pstats.Stats(client_prof, stream=s).sort_stats("tottime").print_stats(20)
        (out / f"client-{workload}.cprofile.txt").write_text(s.getvalue())
        report.append("client (cProfile, tottime):\n```\n" + s.getvalue() + "\n```")
    return "\n".join(report)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tool", choices=("py-spy", "cprofile", "cprofile-cpu"), default="py-spy")
    p.add_argument("--workload", default="rt,conc,bulk")
    p.add_argument("--rt-count", type=int, default=3000)
    p.add_argument("--bulk-bytes", type=int, default=1 << 30)
    p.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    p.add_argument("--client-profile", action="store_true")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "rexec-profile")
    args = p.parse_args()
    if args.tool == "py-spy" and shutil.which("py-spy") is None:
        sys.exit("py-spy not installed: pip install py-spy (or use --tool cprofile)")
    args.out.mkdir(parents=True, exist_ok=True)
    for workload in args.workload.split(","):
        print(profile_one(workload, args, args.out), flush=True)
        print(flush=True)
    print(f"raw profiles in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
