"""Stdin and its credit flow control, against the real server."""

from __future__ import annotations

import hashlib
import os
import random
import time

import pytest

from rexec.protocol import Ping, Signal

from .wire import feed_stdin, raw_frame, sha256, wait_gone

WINDOW = 256 * 1024


def chunks(total: int, size: int, seed: int):
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield rng.randbytes(n)
        sent += n


def test_16_mib_through_sha256sum_within_credit(server, wires) -> None:
    total = 16 * 1024 * 1024
    expected = hashlib.sha256()
    for piece in chunks(total, 1 << 20, 5):
        expected.update(piece)
    wire = wires(server)
    command_id = wire.run(["sha256sum"], stdin=True)
    # feed_stdin sends only what the credit allows: the client core raises
    # LocalProtocolError on any frame beyond it, so "never exceeding" holds.
    max_outstanding = 0
    sent = 0
    for piece in chunks(total, 64 * 1024, 5):
        view = memoryview(piece)
        while view:
            credit = wire.credit(command_id)
            assert credit <= WINDOW
            if credit == 0:
                wire.next_event(20)
                continue
            n = min(credit, len(view))
            wire.stdin(command_id, bytes(view[:n]))
            sent += n
            view = view[n:]
            max_outstanding = max(max_outstanding, sent - wire.results[command_id].credit_granted)
    wire.stdin_eof(command_id)
    result = wire.wait(command_id, 60)
    assert result.exit.exit_code == 0
    assert bytes(result.stdout).split()[0].decode() == expected.hexdigest()
    assert result.exit.stdin_bytes == total
    assert max_outstanding <= WINDOW
    # Credit came back in grants, not one frame per stdin frame.
    assert result.credit_granted >= total - WINDOW
    assert 0 < sum(1 for f in result.frames if f.type == "stdin_credit") < total // (16 * 1024)


def test_stdin_eof_reaches_cat(server, wires) -> None:
    wire = wires(server)
    command_id = wire.run(["cat"], stdin=True)
    wire.stdin(command_id, b"hello ")
    wire.stdin(command_id, b"world\x00\xff")
    wire.stdin_eof(command_id)
    result = wire.wait(command_id, 5)
    assert bytes(result.stdout) == b"hello world\x00\xff"
    assert result.exit.exit_code == 0 and result.exit.stdin_bytes == 13


def test_stdin_sent_before_started_is_accepted(server, wires) -> None:
    wire = wires(server)
    command_id = wire.run(["cat"], stdin=True)
    wire.stdin(command_id, b"early")  # no wait for started
    wire.stdin_eof(command_id)
    assert bytes(wire.wait(command_id, 5).stdout) == b"early"


def test_eof_without_stdin_frames(server, wires) -> None:
    wire = wires(server)
    command_id = wire.run(["cat"], stdin=True)
    wire.stdin_eof(command_id)
    result = wire.wait(command_id, 5)
    assert result.exit.exit_code == 0 and bytes(result.stdout) == b""


def test_without_stdin_the_command_reads_dev_null(server, wires) -> None:
    wire = wires(server)
    started = time.monotonic()
    result = wire.wait(wire.run(["cat"]), 5)
    assert result.exit.exit_code == 0 and bytes(result.stdout) == b""
    assert time.monotonic() - started < 2


def test_sending_beyond_the_credit_is_fatal(server, wires, marker) -> None:
    m = marker()
    wire = wires(server)
    command_id = wire.run(["sleep", m], stdin=True)
    # One frame one byte over the initial window (no credit can have been
    # granted yet: nothing was written).
    wire.send_raw(
        raw_frame({"type": "stdin", "id": command_id, "data_size": WINDOW + 1}, b"x" * (WINDOW + 1))
    )
    wire.expect_error_then_eof("flow.window_exceeded", timeout=5)
    assert wait_gone(m, 2.0 + 1.0) == []


def test_sending_beyond_the_credit_in_many_frames_is_fatal(server, wires, marker) -> None:
    """The command never reads: 64 KiB fit in the pipe and are granted back,
    the rest of the window stays owed; going past it is caught."""
    m = marker()
    wire = wires(server)
    command_id = wire.run(["sleep", m], stdin=True)
    sent = 0
    chunk = b"z" * 65536
    # Respect the credit until it is exhausted and stays so.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        credit = wire.credit(command_id)
        if credit == 0:
            try:
                wire.next_event(0.5)
                continue
            except TimeoutError:
                break
        n = min(credit, len(chunk))
        wire.stdin(command_id, chunk[:n])
        sent += n
    assert sent >= WINDOW
    wire.send_raw(raw_frame({"type": "stdin", "id": command_id, "data_size": 1}, b"!"))
    wire.expect_error_then_eof("flow.window_exceeded", timeout=5)


def _ping_answered(wire, seq: int) -> None:
    """The connection carries on: a ping sent now is answered."""
    wire.send(Ping(seq=seq))
    wire.wait_for(lambda: any(e.type == "pong" and e.seq == seq for e in wire.other_events), 5)


@pytest.mark.parametrize("ended", [False, True], ids=["running", "ended"])
def test_stdin_for_a_command_without_stdin_is_dropped(server, wires, ended) -> None:
    """[command.frames.dropped]: the same answer whether the command is still
    running or has ended: the frame is dropped, the connection carries on."""
    wire = wires(server)
    command_id = wire.run(["sh", "-c", "sleep 0.3; echo ok"])
    if ended:
        wire.wait(command_id, 10)
    wire.send_raw(
        raw_frame({"type": "stdin", "id": command_id, "data_size": 3}, b"abc")
        + raw_frame({"type": "stdin_eof", "id": command_id})
    )
    _ping_answered(wire, 7)
    result = wire.wait(command_id, 10)
    assert bytes(result.stdout) == b"ok\n" and result.exit.exit_code == 0
    assert result.exit.stdin_bytes == 0


@pytest.mark.parametrize("ended", [False, True], ids=["running", "ended"])
def test_stdin_after_stdin_eof_is_dropped(server, wires, ended) -> None:
    wire = wires(server)
    command_id = wire.run(["cat"], stdin=True)
    wire.stdin(command_id, b"abc")
    wire.stdin_eof(command_id)
    if ended:
        wire.wait(command_id, 10)
    late = raw_frame({"type": "stdin", "id": command_id, "data_size": 4}, b"late")
    wire.send_raw(late + raw_frame({"type": "stdin_eof", "id": command_id}))
    _ping_answered(wire, 8)
    result = wire.wait(command_id, 10)
    assert bytes(result.stdout) == b"abc" and result.exit.exit_code == 0
    # [exit.counts]: dropped frames are not counted.
    assert result.exit.stdin_bytes == 3


def test_signal_reaches_a_command_that_never_reads_its_stdin(server, wires, marker) -> None:
    """The frame reader never blocks on a full stdin pipe: with the window
    spent on a ``sleep`` that never reads, a signal for it, and another
    command on the same connection, are still acted on at once."""
    m = marker()
    wire = wires(server)
    sleeper = wire.run(["sleep", m], stdin=True)
    # Fill the pipe and the server's buffer: the whole window, as fast as allowed.
    sent = 0
    while True:
        credit = wire.credit(sleeper)
        if credit == 0:
            try:
                wire.next_event(0.3)
                continue
            except TimeoutError:
                break
        piece = os.urandom(min(credit, 65536))
        wire.stdin(sleeper, piece)
        sent += len(piece)
    assert sent >= WINDOW
    other = wire.run(["echo", "meanwhile"])
    started = time.monotonic()
    result = wire.wait(other, 3)
    assert bytes(result.stdout) == b"meanwhile\n" and result.exit.exit_code == 0
    wire.send(Signal(id=sleeper, signal="SIGTERM"))
    result = wire.wait(sleeper, 3)
    assert time.monotonic() - started < 2
    assert result.exit.signal == 15 and result.exit.signal_name == "SIGTERM"
    assert result.exit.exit_code is None
    assert result.exit.stdin_bytes == sent
    assert wait_gone(m, 1.0) == []


def test_stdin_the_command_does_not_read_is_discarded_and_credited(server, wires) -> None:
    """The command reads 10 bytes, then closes its stdin and lives on for 2 s:
    the server discards further stdin and grants its credit back, so the
    client is never left waiting and all 4 MiB go out while the command lives."""
    wire = wires(server)
    command_id = wire.run(["sh", "-c", "head -c 10; exec 0<&-; sleep 2; echo done"], stdin=True)
    data = os.urandom(4 * 1024 * 1024)
    view = memoryview(data)
    result = wire.results[command_id]
    while view and not result.done:
        credit = wire.credit(command_id)
        if credit == 0:
            wire.next_event(5)  # a TimeoutError here is the failure: no credit while alive
            continue
        n = min(credit, 65536, len(view))
        wire.stdin(command_id, bytes(view[:n]))
        view = view[n:]
    assert not result.done, "the command ended before its stdin could be sent"
    assert not view
    wire.stdin_eof(command_id)
    result = wire.wait(command_id, 10)
    assert bytes(result.stdout) == data[:10] + b"done\n"
    assert result.exit.exit_code == 0
    assert result.exit.stdin_bytes == len(data)


@pytest.mark.slow
def test_64_mib_through_cat(server, wires) -> None:
    total = 64 * 1024 * 1024
    expected = hashlib.sha256()
    for piece in chunks(total, 1 << 20, 9):
        expected.update(piece)
    wire = wires(server)
    command_id = wire.run(["cat"], stdin=True)
    feed_stdin(wire, command_id, chunks(total, 1 << 20, 9), chunk=WINDOW, timeout=100)
    result = wire.wait(command_id, 100)
    assert result.exit.exit_code == 0
    assert len(result.stdout) == total
    assert sha256(bytes(result.stdout)) == expected.hexdigest()
    assert result.exit.stdin_bytes == total and result.exit.stdout_bytes == total


def test_stdin_frames_for_an_ended_command_are_dropped(server, wires) -> None:
    """A stdin that crossed the exit on the wire is dropped silently."""
    from rexec.protocol import Ping

    wire = wires(server)
    command_id = wire.run(["true"], stdin=True)
    wire.wait(command_id, 5)
    wire.send_raw(raw_frame({"type": "stdin", "id": command_id, "data_size": 2}, b"hi"))
    wire.send_raw(raw_frame({"type": "cancel", "id": command_id}))
    wire.send(Ping(seq=3))
    assert wire.next_event(5).type == "pong"
    assert bytes(wire.wait(wire.run(["echo", "ok"]), 5).stdout) == b"ok\n"
