"""Deadlines: a frame must complete within the frame deadline from its first
byte (slowloris), an idle authenticated connection is closed, and a client that
stops reading has its commands ended and its connection dropped."""

from __future__ import annotations

import time

import psutil
import pytest
from server.wire import ServerClosed, Wire, processes_with, wait_for_processes, wait_gone

from rexec.protocol import Error, Run

from .conftest import healthy, open_wire


def dribble(wire: Wire, data: bytes, interval: float, limit: float) -> tuple[float, Error | None]:
    """Send ``data`` one byte per ``interval`` while reading; returns the time
    from the first byte to the fatal error (or the close) and the error."""
    start = time.monotonic()
    for byte in data:
        try:
            wire.sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            event = wire.next_event(interval)
        except TimeoutError:
            if time.monotonic() - start > limit:
                break
            continue
        except ServerClosed:
            return time.monotonic() - start, None
        if isinstance(event, Error):
            return time.monotonic() - start, event
    raise AssertionError(f"no frame.timeout within {limit} s while dribbling")


@pytest.mark.parametrize("authenticated", [False, True], ids=["before-auth", "after-auth"])
def test_slowloris_frame_is_cut_at_the_deadline(daemon, authenticated: bool) -> None:
    server = daemon("--frame-timeout", "0.5", "--auth-timeout", "10", "--idle-timeout", "10")
    with open_wire(server, auth=authenticated) as wire:
        if not authenticated:
            wire.read_hello(2)
        header = Run(id=1, argv=["echo", "x" * 200]).model_dump_json().encode()
        frame = len(header).to_bytes(4, "little") + header
        elapsed, error = dribble(wire, frame, 0.1, 3.0)
        assert error is not None and error.code == "frame.timeout" and error.fatal
        assert 0.45 < elapsed < 0.9, elapsed  # ~5 bytes sent of ~250
        wire.expect_eof(1.0)
    assert [r["event"] for r in server.events("frame_timeout")] == ["frame_timeout"]
    assert healthy(server)


def test_complete_frames_sent_slowly_are_fine(daemon) -> None:
    """The deadline is per frame: many small frames over a long time are not cut."""
    server = daemon("--frame-timeout", "0.5", "--idle-timeout", "10")
    with open_wire(server) as wire:
        for _ in range(8):
            assert wire.wait(wire.run(["true"]), 5).exit.exit_code == 0
            time.sleep(0.15)


def test_silent_connection_closed_at_auth_deadline(daemon) -> None:
    server = daemon("--auth-timeout", "0.5")
    with open_wire(server, auth=False) as wire:
        wire.read_hello(2)
        start = time.monotonic()
        wire.expect_error_then_eof("auth.timeout", timeout=2.0)
        assert 0.4 < time.monotonic() - start < 1.2


def test_idle_timeout(daemon, marker) -> None:
    server = daemon("--idle-timeout", "0.5", "--kill-grace", "0.2")
    m = marker()
    idle = open_wire(server)
    busy = open_wire(server)
    try:
        command = busy.run(["sleep", m], timeout=1.2)
        start = time.monotonic()
        idle.expect_error_then_eof("idle.timeout", timeout=2.0)
        assert 0.4 < time.monotonic() - start < 1.2
        # The connection with a running command outlives the idle timeout...
        result = busy.wait(command, 3)
        assert result.exit.timed_out is True and time.monotonic() - start > 1.1
        # ...and its idle clock starts when the command ends.
        busy.expect_error_then_eof("idle.timeout", timeout=1.5)
    finally:
        idle.close()
        busy.close()
    assert len(server.events("idle_timeout")) == 2


def test_idle_clock_restarts_with_each_command(daemon) -> None:
    """Short commands 0.25 s apart keep a connection with a 0.6 s idle
    timeout open for twice the timeout; once they stop, it is closed a whole
    timeout after the last one ended, not when an earlier clock would have run
    out."""
    server = daemon("--idle-timeout", "0.6")
    with open_wire(server) as wire:
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            assert wire.wait(wire.run(["true"]), 5).exit.exit_code == 0
            time.sleep(0.25)
        last = time.monotonic()
        wire.wait(wire.run(["true"]), 5)
        wire.expect_error_then_eof("idle.timeout", timeout=2.0)
        assert 0.5 < time.monotonic() - last < 1.2
    assert len(server.events("idle_timeout")) == 1


def test_client_that_stops_reading_is_dropped_and_its_command_killed(daemon, marker) -> None:
    server = daemon("--stall-timeout", "0.5", "--kill-grace", "0.2", "--max-total-commands", "1")
    m = marker()
    wire = Wire.open(server.host, server.port, key=server.key, rcvbuf=16384)
    try:
        wire.authenticate()
        fds_before = server.fds()
        # Warm the allocator up with a little output first.
        result = wire.wait(wire.run(["head", "-c", "2000000", "/dev/zero"]), 10)
        assert len(result.stdout) == 2_000_000
        baseline = server.rss()
        command = wire.run(["sh", "-c", f"sleep {m} & exec yes"])
        wire.wait_for(lambda: wire.results[command].started is not None, 5)
        pid = wire.results[command].started.pid
        assert wait_for_processes(m, 1, 3)
        # Stop reading. The server's send buffer fills, the stall clock runs out.
        stopped = time.monotonic()
        peak = baseline
        while processes_with(m) and time.monotonic() - stopped < 5:
            peak = max(peak, server.rss())
            time.sleep(0.05)
        killed_after = time.monotonic() - stopped
        assert wait_gone(m, 1.0) == [], "the stalled client's command is still running"
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert killed_after < 3.0, killed_after
        assert peak - baseline < 8 * 2**20, f"RSS grew {(peak - baseline) / 2**20:.1f} MiB"
        # The connection is gone: whatever the kernel still holds, then EOF or reset.
        drained = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = wire._recv(deadline - time.monotonic())
            except TimeoutError:
                continue
            if not data:
                break
            drained += len(data)
        else:
            raise AssertionError("the stalled connection was not dropped")
    finally:
        wire.close()
    stalled = server.events("client_stalled")
    assert len(stalled) == 1 and stalled[0]["running"] == 1
    # Everything the command held is released: its slot (the cap is 1, so a
    # leaked slot would make this busy), its zombie, its record, its fds.
    deadline = time.monotonic() + 3
    while server.events("exit")[-1:] and server.events("exit")[-1]["id"] != command:
        assert time.monotonic() < deadline, "the stalled command never finished"
        time.sleep(0.05)
    assert healthy(server)
    assert [
        p for p in psutil.Process(server.pid).children() if p.status() == psutil.STATUS_ZOMBIE
    ] == []
    assert list(server.state_dir.iterdir()) == []
    assert abs(server.fds() - fds_before) <= 2
