"""rexec.log while the daemon serves (attacker II, finding 3): a message never
waits on a stderr nobody reads; what can't be held is dropped, counted, and
the count said once stderr is read again."""

from __future__ import annotations

import fcntl
import os
import re
import select
import time
from collections.abc import Iterator

import pytest

from rexec import log as rexec_log

_F_SETPIPE_SZ = 1031


@pytest.fixture
def small_pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, _F_SETPIPE_SZ, 4096)
    yield read_end, write_end
    rexec_log.stop_background(timeout=0.5)
    os.close(read_end)
    os.close(write_end)


def read_lines(fd: int, until: re.Pattern[str], timeout: float) -> list[str]:
    """Read ``fd`` until a line matches ``until`` (bounded by ``timeout``)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until.search(data.decode()):
        if select.select([fd], [], [], 0.1)[0]:
            data += os.read(fd, 65536)
    return data.decode().splitlines()


def test_messages_never_wait_on_an_unread_stderr(small_pipe) -> None:
    read_end, write_end = small_pipe
    rexec_log.start_background(max_queued=10, fd=write_end)
    started = time.monotonic()
    for n in range(300):  # 30 KB: seven times what the pipe holds
        rexec_log.log(f"message {n:03d} " + "x" * 80)
    assert time.monotonic() - started < 1.0  # nothing waited for a reader
    dropped = re.compile(r"rexecd: (\d+) log message\(s\) dropped: stderr was not being read")
    said: list[str] = []
    counts: list[int] = []
    data = b""
    deadline = time.monotonic() + 10
    # The writer may say a count whenever its queue runs empty, then write
    # more: read until every message is accounted for (or the deadline).
    while time.monotonic() < deadline and len(said) + sum(counts) < 300:
        if select.select([read_end], [], [], 0.1)[0]:
            data += os.read(read_end, 65536)
            *complete, rest = data.decode().split("\n")
            data = rest.encode()
            said += [line for line in complete if line.startswith("rexecd: message ")]
            counts += [int(match.group(1)) for line in complete if (match := dropped.match(line))]
    # Every message was either written, in order, or counted as dropped.
    assert counts and all(count > 0 for count in counts)
    assert len(said) + sum(counts) == 300
    numbers = [int(line.split()[2]) for line in said]
    assert numbers == sorted(numbers) and numbers[0] == 0
    # Once read again, messages flow as before.
    rexec_log.log("after")
    assert "rexecd: after" in read_lines(read_end, re.compile("after"), 5)
