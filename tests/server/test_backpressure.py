"""[output.backpressure]: a client that does not read slows the command and
never grows the server's memory, and loses nothing."""

from __future__ import annotations

import functools
import time

import psutil
import pytest

from rexec.protocol import Cancel

from .wire import Wire, connect, run_once

SEQ_LINES = 3_000_000


@functools.cache
def seq_output() -> bytes:
    """What ``seq 1 SEQ_LINES`` writes, about 21 MB: made when a test needs it,
    not when every worker collects this file."""
    return b"".join(b"%d\n" % i for i in range(1, SEQ_LINES + 1))


def rss(server) -> int:
    return psutil.Process(server.process.pid).memory_info().rss


def open_slow_reader(server) -> Wire:
    wire = Wire.open(server.host, server.port, key=server.key, rcvbuf=65536)
    try:
        wire.authenticate()
    except BaseException:
        wire.close()
        raise
    return wire


def warm_up(wire: Wire) -> None:
    """Move some output through first so the allocator's steady state is the baseline."""
    for _ in range(2):
        result = wire.wait(wire.run(["head", "-c", "4000000", "/dev/zero"]), 20)
        assert len(result.stdout) == 4_000_000


def test_client_that_stops_reading_does_not_grow_the_server(server) -> None:
    with open_slow_reader(server) as wire:
        warm_up(wire)
        baseline = rss(server)
        command_id = wire.run(["seq", "1", str(SEQ_LINES)])
        wire.wait_for(lambda: len(wire.results[command_id].stdout) > 0, 5)
        # Stop reading for 2 s, sampling the server's memory.
        peak = baseline
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            peak = max(peak, rss(server))
            time.sleep(0.05)
        growth = peak - baseline
        result = wire.results[command_id]
        assert not result.done
        # The command is held back (seq alone writes 21 MB in well under 2 s).
        seq = [
            p for p in psutil.Process(server.process.pid).children() if p.pid == result.started.pid
        ]
        assert seq and seq[0].status() in (psutil.STATUS_SLEEPING, psutil.STATUS_DISK_SLEEP)
        assert growth < 8 * 1024 * 1024, f"server RSS grew by {growth / 2**20:.1f} MiB"
        # Reading resumes: everything arrives, in order, nothing lost.
        result = wire.wait(command_id, 60)
        assert result.exit.exit_code == 0
        assert len(result.stdout) == len(seq_output())
        assert bytes(result.stdout) == seq_output()
        assert result.exit.stdout_bytes == len(seq_output())


def test_yes_with_a_stalled_reader_then_cancel(server) -> None:
    with open_slow_reader(server) as wire:
        warm_up(wire)
        baseline = rss(server)
        command_id = wire.run(["yes"])
        wire.wait_for(lambda: len(wire.results[command_id].stdout) > 0, 5)
        time.sleep(2.0)
        growth = rss(server) - baseline
        assert growth < 8 * 1024 * 1024, f"server RSS grew by {growth / 2**20:.1f} MiB"
        # A cancel is read even while the server holds output back.
        wire.send(Cancel(id=command_id))
        result = wire.wait(command_id, 30)
        assert result.exit.cancelled is True
        output = bytes(result.stdout)
        assert len(output) == result.exit.stdout_bytes
        assert len(output) % 2 == 0 and output == b"y\n" * (len(output) // 2)


def test_stalled_connection_does_not_hold_back_another(server) -> None:
    with open_slow_reader(server) as stalled:
        command_id = stalled.run(["yes"])
        stalled.wait_for(lambda: len(stalled.results[command_id].stdout) > 0, 5)
        time.sleep(0.5)
        started = time.monotonic()
        result = run_once(server, ["echo", "independent"], wait=5)
        assert bytes(result.stdout) == b"independent\n"
        assert time.monotonic() - started < 1.0
        stalled.send(Cancel(id=command_id))


def test_slow_reader_loses_no_output_after_the_command_exits(start_server, tmp_path) -> None:
    """The command writes more than the buffers hold and exits while the
    client is reading slowly; the client then pauses for longer than the
    drain grace. No process holds the pipes: the rest of the output must
    still arrive, and pipes_held must be false ([exit.pipes_held] is about
    descendants keeping the pipes open, not about a slow client)."""
    server = start_server("--drain-grace", "0.3")
    flag = tmp_path / "seq-done"
    with open_slow_reader(server) as wire:
        command_id = wire.run(shell=f"seq 1 {SEQ_LINES}; touch {flag}")
        result = wire.results[command_id]
        wire.recv_size = 65536
        deadline = time.monotonic() + 60
        while not flag.exists() and not result.done and time.monotonic() < deadline:
            wire.next_event(10)
            time.sleep(0.01)
        assert flag.exists(), "seq did not finish"
        time.sleep(1.0)  # longer than the drain grace, not reading
        wire.recv_size = 1 << 20
        result = wire.wait(command_id, 60)
        assert result.exit.exit_code == 0
        received = bytes(result.stdout)
        assert len(received) == len(seq_output()), (
            f"lost {len(seq_output()) - len(received)} bytes of output;"
            f" pipes_held={result.exit.pipes_held}"
        )
        assert received == seq_output()
        assert result.exit.pipes_held is False


@pytest.mark.slow
def test_backpressure_with_many_commands_on_one_connection(server) -> None:
    """Four bulk commands share one stalled connection; all their output
    arrives complete once reading resumes."""
    with open_slow_reader(server) as wire:
        ids = [wire.run(["head", "-c", str(6_000_000 + i), "/dev/zero"]) for i in range(4)]
        time.sleep(1.0)
        results = wire.wait_all(ids, 60)
        for i, result in enumerate(results):
            assert len(result.stdout) == 6_000_000 + i
            assert result.exit.exit_code == 0 and result.exit.pipes_held is False


def test_connection_helper_is_closed(server) -> None:
    # Guard for filterwarnings=error: connect() used as a context manager.
    with connect(server) as wire:
        assert wire.auth_ok is not None
