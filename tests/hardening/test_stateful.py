"""A hypothesis state machine of connects, runs, signals, cancels, disconnects
(close and reset) and garbage, with at most 4 connections at once.

Invariants: every completed command got exactly one terminal frame (Wire
asserts nothing follows it) with the expected outcome; after each example the
daemon is healthy, no process of ours is left, and its descriptors are back
near their baseline."""

from __future__ import annotations

import dataclasses
import functools
import socket
import struct
import time
import traceback

import pytest
from budget import examples
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from server.wire import ServerClosed, Wire, kill_leftovers, raw_frame, unique_marker, wait_gone

from rexec.protocol import Cancel, Signal

from .conftest import Daemon, healthy, open_wire

MAX_CONNECTIONS = 4
ERRORS: list[str] = []  # what failed, kept for the report when hypothesis calls it flaky


def logged(function):  # type: ignore[no-untyped-def]
    @functools.wraps(function)
    def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return function(self, *args, **kwargs)
        except BaseException:
            ERRORS.append(f"{function.__name__}: {traceback.format_exc()}")
            raise

    return wrapper


@dataclasses.dataclass
class Expected:
    kind: str  # "echo", "exit", "short", "long"
    text: bytes = b""
    code: int = 0
    interfered: bool = False  # signalled or cancelled: any orderly end is fine


@dataclasses.dataclass
class Conn:
    wire: Wire
    commands: dict[int, Expected] = dataclasses.field(default_factory=dict)

    def running(self) -> list[int]:
        return [i for i in self.commands if not self.wire.results[i].done]


def check_result(wire: Wire, command_id: int, expected: Expected) -> None:
    result = wire.results[command_id]
    assert result.terminal_count == 1, result.kinds
    assert result.kinds[-1] in ("exit", "error")
    if result.error is not None:
        pytest.fail(f"command {command_id} ({expected.kind}) refused: {result.error!r}")
    assert result.kinds[0] == "started"
    exit_frame = result.exit
    assert (exit_frame.exit_code is None) != (exit_frame.signal is None)
    if expected.interfered:
        return
    if expected.kind == "echo":
        assert exit_frame.exit_code == 0 and bytes(result.stdout) == expected.text
    elif expected.kind == "exit":
        assert exit_frame.exit_code == expected.code
    elif expected.kind == "short":
        assert exit_frame.exit_code == 0
    else:  # long: only ended by us, or by its own timeout backstop
        assert exit_frame.timed_out


class ServerMachine(RuleBasedStateMachine):
    server: Daemon  # set by the test before running
    marker: str
    fd_baseline: int

    def __init__(self) -> None:
        super().__init__()
        self.conns: list[Conn] = []

    # --- rules ------------------------------------------------------------------

    @precondition(lambda self: len(self.conns) < MAX_CONNECTIONS)
    @rule()
    @logged
    def connect(self) -> None:
        self.conns.append(Conn(open_wire(self.server)))

    @precondition(lambda self: self.conns)
    @rule(
        index=st.integers(0, MAX_CONNECTIONS - 1),
        kind=st.sampled_from(["echo", "exit", "short", "long"]),
        text=st.binary(max_size=64).filter(lambda b: b"\x00" not in b),
        code=st.integers(0, 255),
    )
    @logged
    def run(self, index: int, kind: str, text: bytes, code: int) -> None:
        conn = self.conns[index % len(self.conns)]
        if kind == "echo":
            word = text.decode("latin-1")
            command_id = conn.wire.run(["printf", "%s", word])
            expected = Expected("echo", text=word.encode())
        elif kind == "exit":
            command_id = conn.wire.run(["sh", "-c", f"exit {code}"])
            expected = Expected("exit", code=code)
        elif kind == "short":
            command_id = conn.wire.run(["sleep", "0.1"])
            expected = Expected("short")
        else:
            command_id = conn.wire.run(["sleep", self.marker], timeout=5.0)
            expected = Expected("long")
        conn.commands[command_id] = expected

    # Preconditions and choices depend on the model only (which commands were
    # started), never on the server's timing, so that examples replay; a
    # signal or cancel for a command that has already ended is dropped by
    # the server, which is part of what is tested.
    @precondition(lambda self: any(c.commands for c in self.conns))
    @rule(
        data=st.data(),
        signame=st.sampled_from(["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGUSR1"]),
    )
    @logged
    def signal(self, data: st.DataObject, signame: str) -> None:
        conn, command_id = self._pick(data)
        conn.commands[command_id].interfered = True
        # Raw: the client core refuses frames for an ended command; the
        # server must drop them (they crossed the exit on the wire).
        conn.wire.send_raw(raw_frame(Signal(id=command_id, signal=signame).model_dump(mode="json")))

    @precondition(lambda self: any(c.commands for c in self.conns))
    @rule(data=st.data())
    @logged
    def cancel(self, data: st.DataObject) -> None:
        conn, command_id = self._pick(data)
        conn.commands[command_id].interfered = True
        conn.wire.send_raw(raw_frame(Cancel(id=command_id).model_dump(mode="json")))

    def _pick(self, data: st.DataObject) -> tuple[Conn, int]:
        conn = data.draw(st.sampled_from([c for c in self.conns if c.commands]))
        return conn, data.draw(st.sampled_from(sorted(conn.commands)))

    @precondition(lambda self: self.conns)
    @rule(index=st.integers(0, MAX_CONNECTIONS - 1), reset=st.booleans())
    @logged
    def disconnect(self, index: int, reset: bool) -> None:
        conn = self.conns.pop(index % len(self.conns))
        if reset:
            conn.wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._check_done(conn)
        conn.wire.close()

    @precondition(lambda self: self.conns)
    @rule(index=st.integers(0, MAX_CONNECTIONS - 1), junk=st.binary(min_size=1, max_size=300))
    @logged
    def garbage(self, index: int, junk: bytes) -> None:
        """Bytes that are no frame, then a half-close: the server ends the
        connection (a fatal error, or the FIN inside a frame)."""
        conn = self.conns.pop(index % len(self.conns))
        try:
            conn.wire.send_raw(junk)
            conn.wire.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 3
            while True:
                conn.wire.next_event(deadline - time.monotonic())
        except ServerClosed:
            pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        except TimeoutError:
            # Only a half-close between frames may keep the connection open,
            # and only while commands run: then it ends with them.
            assert conn.running(), "garbage left the connection open"
        finally:
            self._check_done(conn)
            conn.wire.close()

    @precondition(lambda self: self.conns)
    @rule(index=st.integers(0, MAX_CONNECTIONS - 1))
    @logged
    def pump(self, index: int) -> None:
        conn = self.conns[index % len(self.conns)]
        deadline = time.monotonic() + 0.05
        try:
            while time.monotonic() < deadline:
                conn.wire.next_event(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            pass

    # --- invariants ----------------------------------------------------------------

    @invariant()
    @logged
    def completed_commands_are_consistent(self) -> None:
        for conn in self.conns:
            self._check_done(conn)

    def _check_done(self, conn: Conn) -> None:
        for command_id, expected in conn.commands.items():
            if conn.wire.results[command_id].done:
                check_result(conn.wire, command_id, expected)

    @logged
    def teardown(self) -> None:
        try:
            # Every command on a live connection ends, as expected.
            for conn in self.conns:
                for command_id in conn.running():
                    if conn.commands[command_id].kind == "long":
                        conn.commands[command_id].interfered = True
                        conn.wire.send(Cancel(id=command_id))
                for command_id, expected in conn.commands.items():
                    conn.wire.wait(command_id, 10)
                    check_result(conn.wire, command_id, expected)
        finally:
            for conn in self.conns:
                conn.wire.close()
        assert self.server.alive()
        assert wait_gone(self.marker, 3.0) == [], "a command outlived its connection"
        assert healthy(self.server)
        deadline = time.monotonic() + 3
        while self.server.fds() > self.fd_baseline + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.fds() <= self.fd_baseline + 2, (self.server.fds(), self.fd_baseline)


def test_state_machine(daemon) -> None:
    server = daemon("--kill-grace", "0.2", "--drain-grace", "0.3", "--frame-timeout", "0.5")
    assert healthy(server)
    time.sleep(0.1)
    ServerMachine.server = server
    ServerMachine.marker = unique_marker()
    ServerMachine.fd_baseline = server.fds()
    try:
        run_state_machine_as_test(
            ServerMachine,
            settings=settings(
                max_examples=examples(50), stateful_step_count=30, deadline=None,
                suppress_health_check=list(HealthCheck), database=None,
                # no shrinking: timing-bound steps replay inexactly
                phases=[Phase.explicit, Phase.generate],
            ),
        )  # fmt: skip
    except BaseException:
        print("\n".join(ERRORS[-3:]))
        print("--- rexecd stderr ---\n" + server.stderr()[-20000:])
        raise
    finally:
        kill_leftovers(ServerMachine.marker)
    records = server.audit_records()
    assert sum(1 for r in records if r["event"] == "connect") == sum(
        1 for r in records if r["event"] == "disconnect"
    )
