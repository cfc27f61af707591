#!/usr/bin/env python3
"""What the protocol core costs: import time, and encode/decode per frame.

    python bench/protocol_bench.py [--reps 7] [--frames 20000]

Figures (medians over ``--reps`` repetitions, each in a fresh measurement):

- ``import rexec.protocol``: the cumulative microseconds ``python -X importtime``
  reports for the package, each time in a new interpreter;
- ``first message``: a new interpreter that imports the package, validates one
  header and builds one message, in wall-clock milliseconds (what a short
  ``rexec run`` pays before its first frame);
- encode and decode per frame, in microseconds, for a small control frame
  (``stdin_credit``), a ``run`` with argv and env, and a 64 KiB ``stdout``:
  encode is ``Connection.send`` on an open server connection (state checks and
  all); decode is ``Connection.receive_data`` + ``next_event`` on an open
  client connection, fed a stream of such frames in 256 KiB reads, as a socket
  loop would.

Nothing here is asserted: the figures go into bench/PROTOCOL_RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

READ_SIZE = 256 * 1024


def import_micros() -> int:
    """Cumulative import time of rexec.protocol in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import rexec.protocol"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stderr  # fmt: skip
    for line in out.splitlines():
        fields = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2] == "rexec.protocol":
            return int(fields[1])
    raise RuntimeError("rexec.protocol not in the importtime output")


_FIRST_MESSAGE = """
import time
t = time.perf_counter()
import rexec.protocol as p
p.decode_header(b'{"type":"ping","seq":1}')
p.encode_frame(p.Run(id=1, argv=["true"]))
print(time.perf_counter() - t)
"""


def first_message_millis() -> float:
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_MESSAGE], capture_output=True, text=True, check=True,
        cwd=ROOT,
    ).stdout  # fmt: skip
    return float(out) * 1000


def per_call_micros(action: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        action()
    return (time.perf_counter() - start) / count * 1e6


def frame_costs(frames: int) -> dict[str, tuple[float, float]]:
    """(encode, decode) microseconds per frame, by frame kind."""
    from protocol.helpers import deliver, open_pair  # tests/protocol/helpers.py

    from rexec.protocol import Run, Started, StdinCredit, Stdout

    body = bytes(range(256)) * 256  # 64 KiB
    kinds: dict[str, Callable[[int], object]] = {
        "stdin_credit": lambda i: StdinCredit(id=1, bytes=4096),
        "run": lambda i: Run(
            id=i + 2,
            argv=["sh", "-c", "echo $X; exit 3"],
            env={"X": "y", "LANG": "C.UTF-8"},
            stdin=True,
            timeout=30.0,
        ),
        "stdout 64 KiB": lambda i: Stdout.with_data(1, body),
    }
    results = {}
    for name, make in kinds.items():
        count = frames if name != "stdout 64 KiB" else max(1, frames // 10)
        client, server = open_pair()
        if name == "run":  # client → server
            sender, receiver = client, server
        else:  # server → client, for a running command 1
            sender, receiver = server, client
            deliver(client, server, Run(id=1, argv=["cat"], stdin=True))
            deliver(server, client, Started(id=1, pid=2))
        messages = [make(i) for i in range(count)]
        # Frames are dropped once encoded, as after a transport write, so that
        # the allocator reuses memory rather than faulting in fresh pages. Every
        # frame but a run's is the same bytes each time.
        runs: list[bytes] = []
        start = time.perf_counter()
        for message in messages:
            frame = sender.send(message)
            if name == "run":
                runs.append(frame)
        encode = (time.perf_counter() - start) / count * 1e6
        stream = b"".join(runs) if runs else frame * count
        start = time.perf_counter()
        got = 0
        for offset in range(0, len(stream), READ_SIZE):
            receiver.receive_data(stream[offset : offset + READ_SIZE])
            while receiver.next_event() is not None:
                got += 1
        decode = (time.perf_counter() - start) / count * 1e6
        assert got == count, (name, got, count)
        results[name] = (encode, decode)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--frames", type=int, default=20000)
    args = parser.parse_args()
    imports = [import_micros() for _ in range(args.reps)]
    firsts = [first_message_millis() for _ in range(args.reps)]
    print(
        f"import rexec.protocol: {statistics.median(imports) / 1000:.1f} ms "
        f"(min {min(imports) / 1000:.1f}, max {max(imports) / 1000:.1f})"
    )
    print(
        f"first message (import + decode + encode): {statistics.median(firsts):.1f} ms "
        f"(min {min(firsts):.1f}, max {max(firsts):.1f})"
    )
    runs = [frame_costs(args.frames) for _ in range(args.reps)]
    print(f"{'frame':<16}{'encode µs':>12}{'decode µs':>12}")
    for name in runs[0]:
        encode = statistics.median(run[name][0] for run in runs)
        decode = statistics.median(run[name][1] for run in runs)
        print(f"{name:<16}{encode:>12.2f}{decode:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
