"""``rexec batch``, clush and pdsh side by side, in one run, on as many
servers as this machine holds with real daemons (default 128, on
127.0.0.2 and up).

    python bench/fleet_peers.py [--servers 128] [--reps 3] [--fanout 64]

Each tool runs ``hostname`` once on every server (``--onall``, ``clush -w``,
``pdsh -w``), all at a fanout of 64 (clush's default; pdsh's is 32), from
cold: every run opens its connections anew, as each tool does when run
from a shell. Rows:

* rexec batch → 128 real ``rexecd`` (one per address, one key);
* rexec batch → 128 emulated servers (``bench/fleet.py``: no fork, so this
  row is the client's cost alone);
* clush → OpenSSH (``ssh_fleet.py``: sshd per 16 addresses, one key);
* pdsh (``-R ssh``) → the same sshd.

Figures, medians of ``--reps`` interleaved repetitions: wall time, client
CPU (``wait4``: the tool and the ssh processes it started), server CPU (the
daemons' own and their reaped children's, from ``/proc/PID/stat``), client
peak RSS (the tool's own process). Every run's output must hold exactly one
``host: name`` line per server, or the row says what was wrong. A peer that
is not installed is skipped with a line saying why.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_measure import Emulator, free_port, measure, rexec_batch, stop_processes, wait_for_quiet
from ssh_fleet import SshFleet, available, cpu_ticks

TICK = os.sysconf("SC_CLK_TCK")


class RexecdPool:
    """One real ``rexecd`` per address, one key, one port."""

    def __init__(self, directory: Path, addresses: list[str]) -> None:
        self.addresses = addresses
        directory.mkdir()
        self.key_file = directory / "key"
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        self.port = free_port(addresses)
        self.processes: list[subprocess.Popen[bytes]] = []
        for address in addresses:
            state = directory / address
            state.mkdir()
            self.processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "rexec.daemon",
                        "--host",
                        address,
                        "--port",
                        str(self.port),
                        "--key-file",
                        str(self.key_file),
                        "--audit-log",
                        str(state / "audit.jsonl"),
                        "--state-dir",
                        str(state / "state"),
                        "--shutdown-grace",
                        "1",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            )
        for process in self.processes:  # readline: each prints its line at once when ready
            assert process.stdout is not None
            if b"listening" not in process.stdout.readline():
                self.stop()
                raise RuntimeError("a rexecd did not start")

    def cpu_ticks(self) -> int:
        return sum(cpu_ticks(p.pid) for p in self.processes)

    def stop(self) -> None:
        stop_processes(self.processes)


def check(output: str, hosts: list[str]) -> str | None:
    """None when ``output`` has one ``host: name`` line per host, else what is wrong."""
    seen = {}
    for line in output.splitlines():
        host, _, name = line.partition(": ")
        seen[host] = seen.get(host, 0) + 1 if name.strip() else -1000
    wrong = [h for h in hosts if seen.get(h) != 1]
    extra = set(seen) - set(hosts)
    if wrong or extra:
        return f"{len(wrong)} servers without exactly one answer, {len(extra)} unknown lines"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--fanout", type=int, default=64)
    args = parser.parse_args()
    n, fanout = args.servers, str(args.fanout)
    if not 1 <= n <= 250:
        parser.error("--servers: 1 to 250 (they live on 127.0.0.2 and up)")
    addresses = [f"127.0.0.{i + 1}" for i in range(1, n + 1)]
    nodeset = f"127.0.0.[2-{n + 1}]" if n > 1 else "127.0.0.2"
    rows: dict[str, list[dict[str, float]]] = {}
    skipped: dict[str, str] = {}
    problems: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-peers-") as tmp:
        directory = Path(tmp)
        pool = RexecdPool(directory / "rexecd", addresses)
        fleet = Emulator(n, "--base", "127.2.0.0")
        emulated = [fleet.host(i) for i in range(1, n + 1)]
        ssh: SshFleet | None = None
        why = available()
        if why is None:
            ssh = SshFleet(directory / "ssh", addresses)
            ssh.start()
        for tool, binary in (("clush", "clush"), ("pdsh", "pdsh")):
            if ssh is None:
                skipped[tool] = why or ""
            elif not shutil.which(binary):
                package = "clustershell" if tool == "clush" else "pdsh"
                skipped[tool] = f"{binary} not installed (apt-get install -y {package})"
        busy: list[float] = []
        try:
            for _ in range(args.reps):
                busy.append(wait_for_quiet())
                runs = {
                    f"rexec batch → {n} rexecd": (
                        rexec_batch(
                            "--key-file",
                            str(pool.key_file),
                            "-w",
                            f"{nodeset}:{pool.port}",
                            "--onall",
                            "-j",
                            fanout,
                            "-f",
                            fanout,
                            "--",
                            "hostname",
                        ),
                        None,
                        pool.cpu_ticks,
                        addresses,
                    ),
                    f"rexec batch → {n} emulated": (
                        rexec_batch(
                            "--key-file",
                            fleet.key_file,
                            "-w",
                            fleet.hosts,
                            "--onall",
                            "-j",
                            fanout,
                            "-f",
                            fanout,
                            "--",
                            "hostname",
                        ),
                        None,
                        lambda: int(fleet.cpu() * TICK),
                        emulated,
                    ),
                }
                if ssh is not None and "clush" not in skipped:
                    runs[f"clush → {n} sshd"] = (
                        [
                            "clush",
                            "-w",
                            nodeset,
                            "-f",
                            fanout,
                            "-l",
                            "root",
                            "-o",
                            " ".join(ssh.options()),
                            "hostname",
                        ],
                        None,
                        ssh.cpu_ticks,
                        addresses,
                    )
                if ssh is not None and "pdsh" not in skipped:
                    env = os.environ | {
                        "PDSH_RCMD_TYPE": "ssh",
                        "PDSH_SSH_ARGS": " ".join(ssh.options()) + " -l%u %h",
                    }
                    runs[f"pdsh -R ssh → {n} sshd"] = (
                        ["pdsh", "-f", fanout, "-l", "root", "-w", nodeset, "hostname"],
                        env,
                        ssh.cpu_ticks,
                        addresses,
                    )
                for name, (argv, env, server_ticks, hosts) in runs.items():
                    before = server_ticks()
                    out = directory / "out"
                    with open(out, "wb") as stdout:
                        run = measure(argv, stdout=stdout, env=env)
                    server = (server_ticks() - before) / TICK
                    problem = check(out.read_text(errors="replace"), hosts)
                    if problem or run.status:
                        problems[name] = f"{problem or ''} exit {run.status} {run.stderr[-200:]}"
                    rows.setdefault(name, []).append(
                        {
                            "wall": run.seconds,
                            "client_cpu": run.cpu,
                            "server_cpu": server,
                            "rss": run.rss_mib,
                        }
                    )
        finally:
            pool.stop()
            fleet.stop()
            if ssh is not None:
                ssh.stop()
    print(
        f"machine: {os.cpu_count()} CPUs, busy before each repetition: "
        f"{', '.join(f'{b:.2f}' for b in busy)} CPUs; "
        f"{n} servers, fanout {fanout}, hostname once on each, medians of {args.reps}"
    )
    print(f"{'':34} {'wall s':>8} {'client CPU s':>13} {'server CPU s':>13} {'client RSS MiB':>15}")
    for name, samples in rows.items():
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        print(
            f"{name:34} {med['wall']:8.2f} {med['client_cpu']:13.2f} {med['server_cpu']:13.2f} "
            f"{med['rss']:15.1f}  {problems.get(name, '')}"
        )
    for name, why in skipped.items():
        print(f"{name:34} skipped: {why}")


if __name__ == "__main__":
    main()
