"""Interleaved A/B of two rexec clients' keystroke echo (``rexec run -t HOST -- cat``).

A is this checkout's client and rexecd, B those of another tree (``--b-packages``:
a directory holding ``rexec`` and ``rexec_client``, e.g. symlinks to the
``rexec`` and ``client`` folders of ``git archive main`` output). Keystrokes
alternate between the two sessions in blocks, so other jobs' load falls on both
alike; it prints the median and p90 echo of each, their ratio, and each client's
CPU per keystroke (user+system of the client process, from ``/proc``).

    python bench/ab_echo.py --b-packages /tmp/base-packages --samples 300
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from ab_daemons import Daemon, _usage_of  # noqa: E402
from interactive_bench import LETTERS, LINE_LENGTH, REXEC_CLI, EchoSession  # noqa: E402


def _session(packages: str | None, key_file: Path, port: int) -> EchoSession:
    argv = [*REXEC_CLI, "run", "-t", "--key-file", str(key_file), f"127.0.0.1:{port}", "--", "cat"]
    if packages is not None:  # B: its own packages first on the path
        argv = ["env", f"PYTHONPATH={packages}", *argv]
    return EchoSession(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--b-packages", required=True)
    parser.add_argument("--samples", type=int, default=300, help="keystrokes per side")
    parser.add_argument("--block", type=int, default=20, help="keystrokes per block")
    parser.add_argument("--gap", type=float, default=0.005, help="seconds between keystrokes")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rexec-ab-echo-"))
    (tmp / "state").mkdir()
    (tmp / "state-b").mkdir()
    daemons = [Daemon(BENCH.parent, tmp / "key", tmp / "state")]
    sessions: dict[str, EchoSession] = {}
    try:
        daemons.append(Daemon(Path(args.b_packages), tmp / "key", tmp / "state-b"))
        sessions = {
            "A": _session(None, tmp / "key", daemons[0].port),
            "B": _session(args.b_packages, tmp / "key", daemons[1].port),
        }
        echoes: dict[str, list[float]] = {"A": [], "B": []}
        cpu = {"A": 0.0, "B": 0.0}
        server_cpu = {"A": 0.0, "B": 0.0}
        server_pid = {"A": daemons[0].process.pid, "B": daemons[1].process.pid}
        blocks = max(1, args.samples // args.block)
        for block in range(blocks):
            for name in ("A", "B") if block % 2 == 0 else ("B", "A"):
                s = sessions[name]
                cpu0 = _usage_of(s.child.pid)[0]
                server0 = _usage_of(server_pid[name])[0]
                for i in range(args.block):
                    echoes[name].append(s.type_one(LETTERS[i % 26 : i % 26 + 1]))
                    if len(s.line) >= LINE_LENGTH:
                        s.end_line()
                    time.sleep(args.gap)
                s.end_line()
                cpu[name] += _usage_of(s.child.pid)[0] - cpu0
                server_cpu[name] += _usage_of(server_pid[name])[0] - server0
        print(f"{blocks * args.block} keystrokes per side, load {os.getloadavg()[0]:.1f}")
        for name, values in echoes.items():
            p90 = sorted(values)[int(len(values) * 0.9)]
            print(
                f"  {name}: echo median {statistics.median(values) * 1e3:.3f} ms, "
                f"p90 {p90 * 1e3:.3f} ms; CPU per key: client {cpu[name] / len(values) * 1e3:.3f} "
                f"ms, server {server_cpu[name] / len(values) * 1e3:.3f} ms"
            )
        ratio = statistics.median(echoes["B"]) / statistics.median(echoes["A"])
        print(f"  B/A median echo: {ratio:.2f}")
    finally:
        for s in sessions.values():
            s.close()
        for daemon in daemons:
            daemon.stop()


if __name__ == "__main__":
    main()
