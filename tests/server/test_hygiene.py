"""No zombies, no leaked descriptors, and children see only fds 0, 1, 2."""

from __future__ import annotations

import os
import time

import psutil

from .wire import connect


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def zombies(pid: int) -> list[psutil.Process]:
    out = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


def test_200_commands_leave_no_zombies_and_no_fds(server) -> None:
    pid = server.process.pid
    with connect(server) as wire:
        wire.wait(wire.run(["true"]), 5)  # warm up
        baseline = fd_count(pid)
        for batch in range(20):
            ids = [wire.run(["true"]) for _ in range(10)]  # 200 in all
            if batch % 2:
                ids += [wire.run(["cat"], stdin=True) for _ in range(5)]
                for command_id in ids[10:]:
                    wire.stdin(command_id, b"x")
                    wire.stdin_eof(command_id)
                ids += [wire.run(["no-such-program-rexec-test"]) for _ in range(5)]
            for result in wire.wait_all(ids, 20):
                assert result.done
        assert zombies(pid) == []
        assert psutil.Process(pid).children() == []
        assert abs(fd_count(pid) - baseline) <= 2, (baseline, fd_count(pid))
    # After the connection is gone too.
    with connect(server) as wire:
        wire.wait(wire.run(["true"]), 5)
        assert abs(fd_count(pid) - baseline) <= 2


def test_connections_do_not_leak_fds(server) -> None:
    pid = server.process.pid
    with connect(server) as wire:
        wire.wait(wire.run(["true"]), 5)
    baseline = fd_count(pid)
    for _ in range(30):
        with connect(server) as wire:
            wire.wait(wire.run(["true"]), 5)
    # The daemon closes a connection once it has seen it close, which may
    # come after the client's side returned (late under load): wait, bounded,
    # for the count to come back; a leak keeps it 30 above.
    deadline = time.monotonic() + 10
    while abs(fd_count(pid) - baseline) > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert abs(fd_count(pid) - baseline) <= 2, (baseline, fd_count(pid))


def test_child_sees_only_fds_0_1_2(server) -> None:
    with connect(server) as wire:
        result = wire.wait(wire.run(["ls", "/proc/self/fd"]), 5)
        assert bytes(result.stdout).split() == [b"0", b"1", b"2", b"3"]  # 3: ls's own dir fd
        result = wire.wait(wire.run(["ls", "/proc/self/fd"], stdin=True), 5)
        assert bytes(result.stdout).split() == [b"0", b"1", b"2", b"3"]
