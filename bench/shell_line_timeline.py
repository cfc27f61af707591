"""Where the wall time of a ``true`` line goes in ``rexec shell``: the order of events.

CPU totals say what a line costs; they do not say what waits for what. This
starts a rexecd and one ``rexec shell`` on a pty (the client from this
checkout, or from ``--tree``, e.g. ``git archive main``), has the CLI
note the time (``CLOCK_MONOTONIC``, as ``time.perf_counter_ns`` here) of each
step of a line (the keys read, the line accepted, sent, its ``status`` and
``state`` records arriving, the prompt's end and the next one's render) into
a file, types ``true`` lines, and prints the median time of each step from the
moment the line was written to the pty, up to the next prompt seen here.

    python bench/shell_line_timeline.py --lines 300 [--tree /tmp/main]
"""

from __future__ import annotations

import argparse
import bisect
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from interactive_bench import REXEC_PROMPT, PromptSession, Servers  # noqa: E402
from shell_line_ab import FROM_TREE, import_dir  # noqa: E402

#: The CLI with a timestamp at each step (argv[1]: where to write them; then
#: as ``shell_line_ab.FROM_TREE``, the tree to import it from).
_CLI = (
    """
import asyncio, sys, time
marks = open(sys.argv.pop(1), "w", buffering=1)
"""
    + FROM_TREE
    + """
def mark(name):
    marks.write(f"{time.perf_counter_ns()} {name}\\n")
def note(cls, attr, name, before=False):
    original = getattr(cls, attr)
    if asyncio.iscoroutinefunction(original):
        async def noted(*args, **kwargs):
            mark(name + " starts")
            try:
                return await original(*args, **kwargs)
            finally:
                mark(name + " ends")
    else:
        def noted(*args, **kwargs):
            if before:
                mark(name)
            try:
                return original(*args, **kwargs)
            finally:
                if not before:
                    mark(name)
    setattr(cls, attr, noted)
from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.input.vt100 import Vt100Input
from prompt_toolkit.key_binding.key_processor import KeyProcessor
from prompt_toolkit.renderer import Renderer
from rexec_client.shell import channel, line_reader, session
note(Vt100Input, "read_keys", "keys read", before=True)
note(KeyProcessor, "process_keys", "keys processed")
note(Application, "exit", "prompt accepts", before=True)
note(line_reader.PromptReader, "_echo", "line echoed")
note(session.RemoteShell, "_send", "line sent")
note(session.RemoteShell, "run_line", "run_line")
note(PromptSession, "prompt_async", "prompt_async")
note(Application, "reset", "next prompt reset")
note(Renderer, "render", "render starts", before=True)
note(Renderer, "render", "render ends")
deliver = channel.ControlChannel._deliver
def delivered(self, record):
    mark(f"{record.kind} record")
    return deliver(self, record)
channel.ControlChannel._deliver = delivered
from rexec_client.cli import main
sys.exit(main())
"""
)
WARM_LINES = 20


def _timeline(marks: list[tuple[int, str]], lines: list[tuple[int, int]]) -> dict[str, list[int]]:
    """For each step, its time from each line's start (ns); a step seen twice
    in a line is counted apart (``NAME #2``)."""
    times = [t for t, _ in marks]
    steps: dict[str, list[int]] = {}
    for start, seen in lines:
        counted: dict[str, int] = {}
        index = bisect.bisect_left(times, start)
        while index < len(marks) and marks[index][0] <= seen:
            at, name = marks[index]
            counted[name] = counted.get(name, 0) + 1
            label = name if counted[name] == 1 else f"{name} #{counted[name]}"
            steps.setdefault(label, []).append(at - start)
            index += 1
        steps.setdefault("next prompt seen here", []).append(seen - start)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300, help="lines timed")
    parser.add_argument(
        "--tree", type=Path, default=BENCH.parent, help="the client's source tree (this one)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shell-line-timeline-"))
    servers = Servers(tmp)
    servers.start_rexecd()
    marks_file = tmp / "marks"
    argv = servers.rexec("shell", servers.address)
    # argv is [python, "-c", CODE, ...]: the CLI's code is replaced.
    packages = str(import_dir(args.tree, tmp / "packages"))
    shell = PromptSession([argv[0], "-c", _CLI, str(marks_file), packages, *argv[3:]], REXEC_PROMPT)
    lines: list[tuple[int, int]] = []
    try:
        for _ in range(WARM_LINES):
            shell.line(b"true")
        for _ in range(args.lines):
            start = time.perf_counter_ns()
            shell.child.send(b"true\r")
            shell.child.expect_exact(REXEC_PROMPT, timeout=30)
            lines.append((start, time.perf_counter_ns()))
    finally:
        shell.close()
        servers.stop()
    marks = []
    for row in marks_file.read_text().splitlines():
        at, name = row.split(" ", 1)
        marks.append((int(at), name))
    steps = _timeline(marks, lines)
    print(f"{args.lines} `true` lines; median time from the line written to the pty:")
    for name, offsets in sorted(steps.items(), key=lambda item: statistics.median(item[1])):
        share = f" (in {len(offsets)} lines)" if len(offsets) != args.lines else ""
        print(f"  {statistics.median(offsets) / 1e6:7.3f} ms  {name}{share}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
