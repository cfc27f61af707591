"""[close.server.shutdown]: SIGTERM to the daemon."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest

from rexec.protocol import Error, Exit

from .wire import CommandResult, ServerClosed, connect, wait_for_processes, wait_gone


def read_to_the_end(wire, timeout: float) -> list:
    """Every frame until the server closes."""
    frames = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            frames.append(wire.next_event(deadline - time.monotonic()))
    except ServerClosed:
        return frames


def run_until_refused(wire, timeout: float = 10.0) -> tuple[int, CommandResult]:
    """Run ``echo too late`` until the daemon refuses it (it has acted on a
    SIGTERM just sent, however loaded the machine), or ``timeout`` passes:
    the id and result of the last run."""
    deadline = time.monotonic() + timeout
    while True:
        command_id = wire.run(["echo", "too late"])
        result = wire.wait(command_id, 5)
        if result.error is not None or time.monotonic() > deadline:
            return command_id, result
        time.sleep(0.05)


def test_sigterm_cancels_commands_then_closes_every_connection(start_server, marker) -> None:
    server = start_server("--shutdown-grace", "0.5", "--kill-grace", "0.3", "--drain-grace", "0.3")
    markers = [marker() for _ in range(3)]
    wires = [connect(server) for _ in range(3)]
    idle = connect(server)
    try:
        ids = [wire.run(["sleep", m]) for wire, m in zip(wires, markers, strict=True)]
        for m in markers:
            assert wait_for_processes(m, 1)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for wire, command_id in zip(wires, ids, strict=True):
            frames = read_to_the_end(wire, 5)
            exits = [f for f in frames if isinstance(f, Exit)]
            assert len(exits) == 1 and exits[0].id == command_id
            assert exits[0].cancelled is True
            notice, fatal = [f for f in frames if isinstance(f, Error)]
            # Told at once (a notice about no command), then the end.
            assert (notice.code, notice.fatal, notice.id) == ("server.shutting_down", False, None)
            assert fatal.code == "server.shutting_down" and fatal.fatal
            assert frames.index(notice) < frames.index(exits[0]) < frames.index(fatal), (
                "the notice first; the exit before the fatal error"
            )
        frames = read_to_the_end(idle, 5)
        assert [(f.code, f.fatal) for f in frames if isinstance(f, Error)] == [
            ("server.shutting_down", False),
            ("server.shutting_down", True),
        ]
        assert server.process.wait(timeout=5) == 0
        assert time.monotonic() - signalled < 0.5 + 0.3 + 3.0
        for m in markers:
            assert wait_gone(m, 1.0) == []
    finally:
        for wire in [*wires, idle]:
            wire.close()
    records = server.audit_records()
    assert records[-1]["event"] == "shutdown"


def test_term_ignoring_command_is_killed_at_shutdown(start_server, marker) -> None:
    server = start_server("--shutdown-grace", "0.3", "--kill-grace", "0.3")
    m = marker()
    with connect(server) as wire:
        command_id = wire.run(shell=f'trap "" TERM; sleep {m}')
        assert wait_for_processes(m, 1)
        server.process.send_signal(signal.SIGTERM)
        frames = read_to_the_end(wire, 5)
        exits = [f for f in frames if isinstance(f, Exit)]
        assert len(exits) == 1 and exits[0].id == command_id
        assert exits[0].cancelled is True and exits[0].signal == 9
    assert server.process.wait(timeout=5) == 0
    assert wait_gone(m, 1.0) == []


def test_commands_finishing_within_the_grace_end_normally(start_server) -> None:
    server = start_server("--shutdown-grace", "3")
    with connect(server) as wire:
        command_id = wire.run(shell="sleep 0.5; echo done")
        wire.wait_for(lambda: wire.results[command_id].started is not None, 3)
        server.process.send_signal(signal.SIGTERM)
        frames = read_to_the_end(wire, 6)
        result = wire.results[command_id]
        assert result.exit is not None and result.exit.exit_code == 0
        assert result.exit.cancelled is False
        assert bytes(result.stdout) == b"done\n"
        assert isinstance(frames[-1], Error) and frames[-1].code == "server.shutting_down"
    assert server.process.wait(timeout=5) == 0


def test_run_during_shutdown_is_refused_command_scoped(start_server, marker) -> None:
    server = start_server("--shutdown-grace", "1.5", "--kill-grace", "0.3")
    m = marker()
    with connect(server) as wire:
        running = wire.run(["sleep", m])
        assert wait_for_processes(m, 1)
        server.process.send_signal(signal.SIGTERM)
        refused, result = run_until_refused(wire)
        assert result.error is not None
        assert result.error.code == "server.shutting_down"
        assert result.error.fatal is False and result.error.id == refused
        assert not wire.results[running].done  # the connection carries on
        read_to_the_end(wire, 6)
        assert wire.results[running].exit.cancelled is True
    assert server.process.wait(timeout=5) == 0


def test_no_new_connections_during_shutdown(start_server, marker) -> None:
    server = start_server("--shutdown-grace", "1.5")
    m = marker()
    with connect(server) as wire:
        wire.run(["sleep", m])
        assert wait_for_processes(m, 1)
        server.process.send_signal(signal.SIGTERM)
        _, result = run_until_refused(wire)  # the daemon has acted on the signal
        assert result.error is not None and result.error.code == "server.shutting_down"
        try:
            probe = socket.create_connection((server.host, server.port), timeout=1)
        except ConnectionRefusedError:
            pass  # the listener is closed: the expected outcome
        else:
            # Accepted from the backlog? It must then be closed, never served.
            with probe:
                probe.settimeout(2)
                try:
                    data = probe.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert data == b"", "a connection made during shutdown was served"
        read_to_the_end(wire, 6)
    assert server.process.wait(timeout=5) == 0


def test_sigint_shuts_down_too(start_server) -> None:
    server = start_server("--shutdown-grace", "0.2")
    with connect(server) as wire:
        server.process.send_signal(signal.SIGINT)
        frames = read_to_the_end(wire, 5)
        assert [(f.code, f.fatal) for f in frames if isinstance(f, Error)] == [
            ("server.shutting_down", False),
            ("server.shutting_down", True),
        ]
    try:
        assert server.process.wait(timeout=5) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("rexecd did not exit on SIGINT")
