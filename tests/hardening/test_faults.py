"""Faults: kill -9 of the daemon mid-command and the sweep on restart (only of
its own records), and spawn failures that leave the connection usable."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from server.wire import ServerClosed, processes_with, raw_frame, wait_for_processes, wait_gone

from rexec.protocol import Cancel

from .conftest import open_wire


def test_kill_9_then_restart_sweeps_the_orphans(daemon, tmp_path: Path, marker) -> None:
    m1, m2 = marker(), marker()
    first = daemon()
    wire = open_wire(first)
    try:
        command = wire.run(["sh", "-c", f"sleep {m1} & sleep {m2}"])
        wire.wait_for(lambda: wire.results[command].started is not None, 5)
        assert wait_for_processes(m1, 1, 5) and wait_for_processes(m2, 1, 5)
        assert len(list(first.state_dir.iterdir())) == 1  # the group is on record
        os.kill(first.pid, signal.SIGKILL)
        first.process.wait(5)
        # The client sees the end, never a hang.
        with pytest.raises(ServerClosed):
            wire.wait(command, 5)
    finally:
        wire.close()
    # Nothing catches a SIGKILLed daemon's children: they are still there...
    assert processes_with(m1) and processes_with(m2)
    # ...until a daemon with the same state directory starts.
    started = time.monotonic()
    second = daemon(state_dir=first.state_dir)
    assert wait_gone(m1, 2.0) == [] and wait_gone(m2, 2.0) == []
    assert time.monotonic() - started < 2.0 + 5  # start-up included
    sweeps = second.events("sweep")
    assert len(sweeps) == 1 and len(sweeps[0]["killed_process_groups"]) == 1
    assert list(second.state_dir.iterdir()) == []
    with open_wire(second) as fresh:
        assert fresh.wait(fresh.run(["true"]), 5).exit.exit_code == 0


def test_other_daemons_commands_are_left_alone(daemon, tmp_path: Path, marker) -> None:
    m = marker()
    first = daemon()
    with open_wire(first) as wire:
        command = wire.run(["sleep", m])
        wire.wait_for(lambda: wire.results[command].started is not None, 5)
        # A daemon with a different state directory.
        other = daemon()
        # A daemon sharing the state directory while the first is alive.
        sharing = daemon(state_dir=first.state_dir)
        time.sleep(0.3)
        assert processes_with(m), "a starting daemon killed another's command"
        assert other.events("sweep") == [] and sharing.events("sweep") == []
        assert len(list(first.state_dir.iterdir())) == 1
        # The first still owns and ends it.
        wire.send(Cancel(id=command))
        assert wire.wait(command, 5).exit.cancelled is True
    assert wait_gone(m, 2) == []


def test_sweep_checks_the_start_time(tmp_path: Path, marker) -> None:
    """A record whose pid now names another process (pid reuse) is not
    signalled; the same record with the right start time is."""
    from rexec.server.process_records import ProcessRecords, _start_time

    m = marker()
    victim = subprocess.Popen(["sleep", m], start_new_session=True)
    try:
        records = ProcessRecords(tmp_path / "state")
        dead_owner = "999999999 1"
        (records.directory / str(victim.pid)).write_text(f"1 {dead_owner}\n")
        assert ProcessRecords(tmp_path / "state").sweep() == []
        assert victim.poll() is None
        (records.directory / str(victim.pid)).write_text(
            f"{_start_time(victim.pid)} {dead_owner}\n"
        )
        (records.directory / "garbage").write_text("not a record")
        (records.directory / "12345").write_text("truncated")
        assert ProcessRecords(tmp_path / "state").sweep() == [victim.pid]
        assert victim.wait(2) == -signal.SIGKILL
        assert sorted(p.name for p in records.directory.iterdir()) == ["garbage"]
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_spawn_failures_are_command_scoped(daemon, tmp_path: Path) -> None:
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    not_executable.chmod(0o644)
    # A small stack limit lowers the kernel's argv+env budget to its 128 KiB
    # floor, which 20,000 empty arguments (160 KiB of pointers) exceed while
    # their frame stays under the 64 KiB header limit.
    server = daemon("--max-argv-bytes", str(4 * 2**20), shell_prefix="ulimit -s 256")
    with open_wire(server) as wire:
        cases = [
            (["/no/such/program"], "spawn.not_found", "ENOENT"),
            (["no-such-program-in-path-rexec"], "spawn.not_found", "ENOENT"),
            ([str(not_executable)], "spawn.permission_denied", "EACCES"),
            ([str(tmp_path)], "spawn.permission_denied", "EACCES"),
            (["true"] + [""] * 20000, "spawn.failed", "E2BIG"),
        ]
        for argv, code, errno_name in cases:
            result = wire.wait(wire.run(argv), 5)
            assert result.error is not None and result.error.code == code, (argv[:1], result.frames)
            assert errno_name in result.error.message and result.error.fatal is False
            assert result.started is None
            assert wire.wait(wire.run(["echo", "ok"]), 5).exit.exit_code == 0
    refused = [r["code"] for r in server.events("refused")]
    assert refused == [code for _, code, _ in cases]


def test_argv_beyond_the_header_limit_closes_the_connection(daemon) -> None:
    """A 2 MiB argv can't reach spawn at all: its frame is above the 64 KiB
    header limit, a fatal frame.too_large, whatever --max-argv-bytes says."""
    server = daemon("--max-argv-bytes", str(4 * 2**20))
    with open_wire(server) as wire:
        try:
            wire.send_raw(
                raw_frame(
                    {"type": "run", "data_size": 0, "id": 1, "argv": ["echo", "x" * (2 * 2**20)]}
                )
            )
        except (BrokenPipeError, ConnectionResetError):
            pass
        wire.expect_error_then_eof("frame.too_large", timeout=5)
    with open_wire(server) as fresh:
        assert fresh.wait(fresh.run(["true"]), 5).exit.exit_code == 0


def test_fin_inside_a_frame_while_output_flows(daemon, marker) -> None:
    """A client that leaves in the middle of a frame while its command prints:
    the server drops the connection and kills the command, without trying to
    send on the closed connection (which once recursed through fatal() and
    flooded the log with tracebacks, blocking the event loop)."""
    server = daemon("--kill-grace", "0.2")
    m = marker()
    for _ in range(20):
        with open_wire(server) as wire:
            command = wire.run(["sh", "-c", f"sleep {m} & yes"])
            wire.wait_for(lambda: len(wire.results[command].stdout) > 0, 5)
            wire.send_raw(b'\x10\x00\x00\x00{"ty')  # a frame's first bytes...
            wire.sock.shutdown(__import__("socket").SHUT_WR)  # ...then FIN
            try:
                wire.raw_eof(3)
            except ConnectionResetError:
                pass
    assert wait_gone(m, 2) == []
    start = time.monotonic()
    assert healthy_within(server, 2.0)
    assert time.monotonic() - start < 2.0
    assert "Traceback" not in server.stderr()


def healthy_within(server, timeout: float) -> bool:
    with open_wire(server) as wire:
        return wire.wait(wire.run(["true"]), timeout).exit.exit_code == 0


def test_half_close_is_stdin_eof_for_running_commands(daemon) -> None:
    """A client's FIN ends its input: a command reading stdin sees EOF after
    the bytes already sent, finishes, and the connection then closes."""
    server = daemon()
    with open_wire(server) as wire:
        command = wire.run(["sh", "-c", "cat; echo end"], stdin=True)
        wire.stdin(command, b"some input ")
        wire.sock.shutdown(__import__("socket").SHUT_WR)
        result = wire.wait(command, 5)
        assert bytes(result.stdout) == b"some input end\n" and result.exit.exit_code == 0
        assert result.exit.cancelled is False
        wire.expect_eof(2.0)


def test_reader_that_stopped_then_reset_frees_everything(daemon, marker) -> None:
    """A client stops reading (the server pauses the command's output), then
    resets the connection: the command is killed and its slot, zombie and
    descriptors released; with a cap of 1 a leak would make the next run busy."""
    import socket
    import struct

    import psutil
    from server.wire import Wire

    server = daemon("--max-total-commands", "1", "--kill-grace", "0.2", "--drain-grace", "0.3")
    m = marker()
    for _ in range(3):
        wire = Wire.open(server.host, server.port, key=server.key, rcvbuf=16384)
        wire.authenticate()
        command = wire.run(["sh", "-c", f"sleep {m} & exec yes"])
        wire.wait_for(lambda: wire.results[command].started is not None, 5)
        time.sleep(0.5)  # the server's buffer fills; output is paused
        wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        wire.close()
        assert wait_gone(m, 2) == []
        deadline = time.monotonic() + 3
        while True:
            result = None
            with open_wire(server) as fresh:
                result = fresh.wait(fresh.run(["true"]), 5)
            if result.exit is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert result.exit is not None and result.exit.exit_code == 0, result.frames
    zombies = [
        p for p in psutil.Process(server.pid).children() if p.status() == psutil.STATUS_ZOMBIE
    ]
    assert zombies == []
    assert list(server.state_dir.iterdir()) == []
