"""``rexec batch`` at scale, side by side with GNU parallel over ssh.

    python bench/batch_bench.py            # the full run (~2–4 min)
    python bench/batch_bench.py --quick    # smaller counts

What it measures, in one run on one machine (all traffic on loopback):

* ``true`` × 10,000 over 4 local rexecd (127.0.0.2–5, one key) at ``-j 64``:
  jobs/s and the batch process's peak RSS; the same at 2,000 jobs to show the
  memory does not grow with the number of jobs;
* 1,000 jobs × 1 MiB of stdout each (``head -c 1048576 /dev/zero``), output
  to /dev/null: MB/s and peak RSS;
* a dry run of 1,000 servers × 100 commands: time to the first line, and to
  the last;
* GNU parallel over ssh with a warm ControlMaster (``parallel -S 64/host
  --ssh 'ssh -o ControlPath=…'``) against the benchmark's own sshd
  (``local_sshd.py``): ``true`` jobs and 1 MiB jobs, fewer of them (it runs
  a Perl wrapper through ssh per job), reported as jobs/s. Skipped, with the
  reason, when ``parallel`` or sshd is missing (``apt-get install -y parallel
  openssh-server``).

Peak RSS is the child's ``VmHWM`` (``fleet_measure.measure``). Every server started
here is stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_measure import free_port, measure
from local_sshd import LocalSshd
from local_sshd import available as sshd_available

HOSTS = [f"127.0.0.{i}" for i in range(2, 6)]
MIB = 1 << 20


def start_servers(directory: Path) -> tuple[list[subprocess.Popen[bytes]], Path, int]:
    key = directory / "key"
    key.write_text(secrets.token_hex(32) + "\n")
    key.chmod(0o600)
    port = free_port(HOSTS)
    servers = []
    for host in HOSTS:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rexec.daemon",
                "--host",
                host,
                "--port",
                str(port),
                "--key-file",
                str(key),
                "--audit-log",
                str(directory / f"audit-{host}.jsonl"),
                "--max-commands",
                "64",
                "--max-total-commands",
                "256",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        if b"listening" not in process.stdout.readline():
            raise RuntimeError(f"rexecd on {host} did not start")
        servers.append(process)
    return servers, key, port


def timed(argv: list[str], *, stdin_path: Path | None = None) -> tuple[float, int, float]:
    """Run ``argv`` (stdout to /dev/null); return (seconds, exit status, peak RSS MiB)."""
    with open(stdin_path or os.devnull, "rb") as stdin:
        run = measure(argv, stdin=stdin)
    if run.status != 0:
        print(f"  ! {argv[:6]}… exited {run.status}: {run.stderr[-400:]}", file=sys.stderr)
    return run.seconds, run.status, run.rss_mib


def write_commands(path: Path, command: str, count: int) -> Path:
    path.write_text((command + "\n") * count)
    return path


def rexec_batch(key: Path, port: int, commands: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rexec_client.cli",
        "batch",
        "--key-file",
        str(key),
        "-H",
        f"127.0.0.[2-5]:{port}",
        "-j",
        "64",
        "--no-progress",
        *extra,
        str(commands),
    ]


def dry_run_first_line(directory: Path) -> tuple[float, float]:
    commands = write_commands(directory / "dry", "echo hello", 100)
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rexec_client.cli",
            "batch",
            "-H",
            "n[0000-0999]",
            "--onall",
            "--dry-run",
            str(commands),
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.readline()
    first = time.perf_counter() - started
    lines = 1 + process.stdout.read().count(b"\n")
    process.stdout.close()
    process.wait()
    assert lines == 100_000, lines
    return first, time.perf_counter() - started


def gnu_parallel(directory: Path, cases: list[tuple[str, Path, int]]) -> list[tuple[str, str]]:
    """GNU parallel over ssh with a warm ControlMaster, 64 at a time: one
    row per (label, commands file, count)."""
    name = "GNU parallel -S over ssh (ControlMaster)"
    why = (
        "parallel not installed (apt-get install -y parallel)"
        if not shutil.which("parallel")
        else sshd_available()
    )
    if why is not None:
        return [(f"{name}: {label}", f"skipped: {why}") for label, _, _ in cases]
    sshd = LocalSshd(directory / "sshd")
    rows = []
    try:
        sshd.start()
        sshd.start_master()
        ssh = " ".join(sshd.argv(mux=True)[:-1])  # without the host: parallel adds it
        for label, commands, count in cases:
            seconds, status, rss = timed(
                ["parallel", "--will-cite", "-j", "64", "-S", "64/root@127.0.0.1", "--ssh", ssh],
                stdin_path=commands,
            )
            rows.append(
                (
                    f"{name}: {label} × {count:,}, -j 64",
                    f"{seconds:.2f} s, {count / seconds:,.0f} jobs/s, "
                    f"peak RSS {rss:.0f} MiB, exit {status}",
                )
            )
    finally:
        sshd.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args()
    n_true, n_small, n_bulk = (2000, 500, 200) if args.quick else (10_000, 2_000, 1_000)
    n_ssh_true, n_ssh_bulk = (300, 50) if args.quick else (1_000, 200)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        directory = Path(tmp)
        servers, key, port = start_servers(directory)
        try:
            first, total = dry_run_first_line(directory)
            rows.append(
                (
                    "dry run 1,000 servers × 100 commands",
                    f"first line {first * 1000:.0f} ms (interpreter start included), "
                    f"all 100,000 in {total:.2f} s",
                )
            )
            for count in (n_small, n_true):
                seconds, status, rss = timed(
                    rexec_batch(
                        key, port, write_commands(directory / f"true{count}", "true", count)
                    )
                )
                rows.append(
                    (
                        f"rexec batch: true × {count:,}, 4 servers, -j 64",
                        f"{seconds:.2f} s, {count / seconds:,.0f} jobs/s, "
                        f"peak RSS {rss:.0f} MiB, exit {status}",
                    )
                )
            bulk = write_commands(directory / "bulk", f"head -c {MIB} /dev/zero", n_bulk)
            seconds, status, rss = timed(rexec_batch(key, port, bulk))
            rows.append(
                (
                    f"rexec batch: {n_bulk:,} jobs × 1 MiB stdout, -j 64",
                    f"{seconds:.2f} s, {n_bulk / seconds:,.0f} jobs/s, "
                    f"{n_bulk * MIB / seconds / 1e6:,.0f} MB/s, peak RSS {rss:.0f} MiB, "
                    f"exit {status}",
                )
            )
        finally:
            for process in servers:
                process.send_signal(signal.SIGTERM)
            for process in servers:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                if process.stdout:
                    process.stdout.close()
        rows += gnu_parallel(
            directory,
            [
                ("true", write_commands(directory / "ssh-true", "true", n_ssh_true), n_ssh_true),
                (
                    "1 MiB stdout",
                    write_commands(directory / "ssh-bulk", f"head -c {MIB} /dev/zero", n_ssh_bulk),
                    n_ssh_bulk,
                ),
            ],
        )
    width = max(len(name) for name, _ in rows)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for name, figures in rows:
        print(f"{name:<{width}}  {figures}")


if __name__ == "__main__":
    main()
