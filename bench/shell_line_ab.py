"""Interleaved A/B of two client trees: the CPU a ``true`` line costs ``rexec shell``.

On a machine shared with other jobs a line's wall time mostly measures the wait
for a CPU; two sessions open side by side, their lines run in alternating
blocks, meet the same noise, and CPU time barely depends on it. This starts one
rexecd per side (both from this checkout: only the client differs) and one
``rexec shell`` on a pty per side, A from this checkout, B from ``--b`` (a
source tree, e.g. ``git archive main | tar -x -C /tmp/base``), and types
``true`` lines into each in alternating blocks. It prints, per side, the CPU a
line cost the CLI's process tree and the server side (rexecd and its children:
the remote bash, ``cat``), from ``/proc``, and the median wall time from Enter
to the next prompt.

The CLI of each side is imported from its own tree: an editable install of this
checkout answers ``import rexec_client`` before ``PYTHONPATH`` is looked at, so
the import system is told to skip it (``_CLI``).

    python bench/shell_line_ab.py --b /tmp/base --lines 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from interactive_bench import REXEC_PROMPT, PromptSession, Servers  # noqa: E402
from run import CLK_TCK, _ticks, _tree  # noqa: E402

#: The CLI, imported from the tree in argv[1] (its packages linked under their
#: import names in that directory) and not from an editable install.
FROM_TREE = """
import sys
packages = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path.insert(0, packages)
"""
_CLI = (
    FROM_TREE
    + """
from rexec_client.cli import main
sys.exit(main())
"""
)
WARM_LINES = 20


def import_dir(tree: Path, into: Path) -> Path:
    """A directory where ``tree``'s packages have their import names."""
    into.mkdir()
    (into / "rexec_client").symlink_to(tree.resolve() / "client")
    (into / "rexec").symlink_to(tree.resolve() / "rexec")
    return into


def _cpu(pids: list[int]) -> int:
    return sum(_ticks(pid) for pid in pids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--b", type=Path, required=True, help="the other source tree")
    parser.add_argument("--lines", type=int, default=1000, help="lines per side")
    parser.add_argument("--block", type=int, default=50, help="lines in a row on one side")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shell-line-ab-"))
    trees = {"A": BENCH.parent, "B": args.b}
    servers: dict[str, Servers] = {}
    shells: dict[str, PromptSession] = {}
    try:
        for side, tree in trees.items():
            servers[side] = Servers(tmp / side)
            (tmp / side).mkdir()
            servers[side].start_rexecd()
            argv = servers[side].rexec("shell", servers[side].address)
            # argv is [python, "-c", CODE, ...]: the CLI's code is replaced.
            packages = import_dir(tree, tmp / f"{side}-packages")
            shells[side] = PromptSession(
                [argv[0], "-c", _CLI, str(packages), *argv[3:]], REXEC_PROMPT
            )
            for _ in range(WARM_LINES):
                shells[side].line(b"true")
        ticks = {side: [0, 0] for side in trees}
        walls: dict[str, list[float]] = {side: [] for side in trees}
        for block in range(max(1, args.lines // args.block)):
            for side in trees if block % 2 == 0 else reversed(trees):
                shell, server = shells[side], servers[side]
                client_pids = _tree(shell.child.pid)
                client, served = _cpu(client_pids), _cpu(server.rexecd_pids())
                walls[side] += [shell.line(b"true") for _ in range(args.block)]
                ticks[side][0] += _cpu(client_pids) - client
                ticks[side][1] += _cpu(server.rexecd_pids()) - served
        for side, tree in trees.items():
            n = len(walls[side])
            client_ms, server_ms = (t / CLK_TCK / n * 1e3 for t in ticks[side])
            print(
                f"{side} ({tree}): CPU a line: client {client_ms:.2f} ms, server side"
                f" {server_ms:.2f} ms; wall median {statistics.median(walls[side]) * 1e3:.2f} ms"
                f" ({n} lines)"
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        for shell in shells.values():
            shell.close()
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
