"""Ending commands: timeouts, cancel, signals, and the client going away."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from rexec.protocol import Cancel, Signal

from .wire import ServerClosed, connect, raw_frame, run_once, wait_for_processes, wait_gone

KILL_GRACE = 0.3


@pytest.fixture
def graced(start_server):
    """A server with short graces."""
    return start_server("--kill-grace", str(KILL_GRACE), "--drain-grace", "0.3")


def test_timeout_kills_the_whole_group(graced, marker) -> None:
    m1, m2 = marker(), marker()
    started = time.monotonic()
    result = run_once(graced, shell=f"sleep {m1} & sleep {m2}", timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.exit.timed_out is True
    assert result.exit.cancelled is False
    assert result.exit.exit_code is None and result.exit.signal == 15
    assert 0.45 <= result.exit.duration <= 0.5 + KILL_GRACE + 1.0
    assert elapsed < 0.5 + KILL_GRACE + 1.0
    assert wait_gone(m1, KILL_GRACE + 1.0) == []
    assert wait_gone(m2, 0.1) == []


def test_timeout_escalates_to_sigkill_for_a_term_ignoring_command(graced, marker) -> None:
    m = marker()
    result = run_once(graced, shell=f'trap "" TERM; sleep {m}; echo survived', timeout=0.5)
    assert result.exit.timed_out is True
    assert result.exit.signal == 9 and result.exit.signal_name == "SIGKILL"
    assert 0.5 + KILL_GRACE - 0.05 <= result.exit.duration <= 0.5 + KILL_GRACE + 1.0
    assert b"survived" not in result.stdout
    assert wait_gone(m, 1.0) == []


def test_command_finishing_before_its_timeout_is_not_timed_out(graced) -> None:
    result = run_once(graced, ["true"], timeout=5)
    assert result.exit.timed_out is False and result.exit.exit_code == 0


def test_cancel(graced, wires, marker) -> None:
    m = marker()
    wire = wires(graced)
    command_id = wire.run(shell=f"sleep {m} & sleep {m}; echo never")
    wait_for_processes(m, 2)
    wire.send(Cancel(id=command_id))
    result = wire.wait(command_id, KILL_GRACE + 2)
    assert result.exit.cancelled is True and result.exit.timed_out is False
    assert result.exit.signal == 15
    assert b"never" not in result.stdout
    assert wait_gone(m, KILL_GRACE + 1.0) == []


def test_cancel_escalates_to_sigkill(graced, wires, marker) -> None:
    m = marker()
    wire = wires(graced)
    command_id = wire.run(shell=f'trap "" TERM; sleep {m}')
    wait_for_processes(m, 1)
    sent = time.monotonic()
    wire.send(Cancel(id=command_id))
    result = wire.wait(command_id, KILL_GRACE + 2)
    assert time.monotonic() - sent >= KILL_GRACE - 0.05
    assert result.exit.cancelled is True and result.exit.signal == 9
    assert wait_gone(m, 1.0) == []


def test_cancel_of_a_stopped_command(graced, wires, marker) -> None:
    m = marker()
    wire = wires(graced)
    command_id = wire.run(["sleep", m])
    wait_for_processes(m, 1)
    wire.send(Signal(id=command_id, signal="SIGSTOP"))
    time.sleep(0.1)
    wire.send(Cancel(id=command_id))
    result = wire.wait(command_id, KILL_GRACE + 2)
    assert result.exit.cancelled is True
    assert wait_gone(m, 1.0) == []


def test_sigint_to_sleep(graced, wires, marker) -> None:
    m = marker()
    wire = wires(graced)
    command_id = wire.run(["sleep", m])
    wait_for_processes(m, 1)
    wire.send(Signal(id=command_id, signal="SIGINT"))
    result = wire.wait(command_id, 2)
    assert result.exit.signal == 2 and result.exit.signal_name == "SIGINT"
    assert result.exit.cancelled is False and result.exit.timed_out is False


def test_signal_reaches_the_whole_group(graced, wires, marker) -> None:
    m1, m2 = marker(), marker()
    wire = wires(graced)
    command_id = wire.run(shell=f"sleep {m1} & sleep {m2}; wait")
    wait_for_processes(m1, 1)
    wait_for_processes(m2, 1)
    wire.send(Signal(id=command_id, signal="SIGTERM"))
    wire.wait(command_id, 2)
    assert wait_gone(m1, 1.0) == [] and wait_gone(m2, 0.1) == []


def test_signal_handled_by_the_command(graced, wires) -> None:
    wire = wires(graced)
    command_id = wire.run(
        shell="trap 'echo got usr1; exit 7' USR1; echo ready; while :; do sleep 0.05; done"
    )
    wire.wait_for(lambda: b"ready" in wire.results[command_id].stdout, 3)
    wire.send(Signal(id=command_id, signal="SIGUSR1"))
    result = wire.wait(command_id, 3)
    assert result.exit.exit_code == 7
    assert bytes(result.stdout) == b"ready\ngot usr1\n"


def test_signal_and_cancel_for_an_ended_command_are_dropped(graced, wires) -> None:
    wire = wires(graced)
    command_id = wire.run(["true"])
    wire.wait(command_id, 3)
    wire.send_raw(raw_frame({"type": "signal", "id": command_id, "signal": "SIGKILL"}))
    wire.send_raw(raw_frame({"type": "cancel", "id": command_id}))
    assert bytes(wire.wait(wire.run(["echo", "fine"]), 3).stdout) == b"fine\n"


def test_frame_for_an_id_never_used_is_bad_id(graced, wires) -> None:
    wire = wires(graced)
    wire.wait(wire.run(["true"]), 3)
    wire.send_raw(raw_frame({"type": "cancel", "id": 999}))
    wire.expect_error_then_eof("command.bad_id")


def test_run_ids_must_increase(graced, wires) -> None:
    wire = wires(graced)
    wire.wait(wire.run(["true"], id=5), 3)
    wire.send_raw(raw_frame({"type": "run", "id": 5, "argv": ["true"]}))
    wire.expect_error_then_eof("command.bad_id")


# --- the client going away ----------------------------------------------------------------


def _start_sleepers(wire, marker, chatty: bool) -> list[str]:
    m1, m2 = marker(), marker()
    if chatty:
        shell = f"sleep {m1} & sleep {m2} & while :; do echo tick; sleep 0.1; done"
    else:
        shell = f"sleep {m1} & sleep {m2}; wait"
    command_id = wire.run(shell=shell)
    wire.wait_for(lambda: wire.results[command_id].started is not None, 3)
    assert len(wait_for_processes(m1, 1)) == 1 and len(wait_for_processes(m2, 1)) == 1
    if chatty:
        wire.wait_for(lambda: bytes(wire.results[command_id].stdout).startswith(b"tick"), 3)
    return [m1, m2]


@pytest.mark.parametrize("chatty", [False, True], ids=["silent-command", "chatty-command"])
def test_disconnect_kills_the_command(graced, marker, chatty) -> None:
    wire = connect(graced)
    markers = _start_sleepers(wire, marker, chatty)
    wire.close()  # FIN: a client that is gone, not one that half-closed
    for m in markers:
        assert wait_gone(m, KILL_GRACE + 1.0) == [], f"command outlived its client ({m})"
    assert bytes(run_once(graced, ["echo", "ok"]).stdout) == b"ok\n"


@pytest.mark.parametrize("chatty", [False, True], ids=["silent-command", "chatty-command"])
def test_reset_kills_the_command(graced, marker, chatty) -> None:
    wire = connect(graced)
    markers = _start_sleepers(wire, marker, chatty)
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wire.close()  # RST
    for m in markers:
        assert wait_gone(m, KILL_GRACE + 1.0) == []
    assert bytes(run_once(graced, ["echo", "ok"]).stdout) == b"ok\n"
    disconnects = [r for r in graced.audit_records() if r["event"] == "disconnect"]
    assert disconnects


def test_disconnect_kills_a_term_ignoring_command_after_the_grace(graced, marker) -> None:
    m = marker()
    wire = connect(graced)
    command_id = wire.run(shell=f'trap "" TERM; sleep {m} & while :; do echo tick; sleep 0.1; done')
    wire.wait_for(lambda: bytes(wire.results[command_id].stdout).startswith(b"tick"), 3)
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wire.close()
    assert wait_gone(m, KILL_GRACE + 1.0) == []


def test_half_close_does_not_kill(graced, wires, marker) -> None:
    wire = wires(graced)
    command_id = wire.run(shell="sleep 0.5; echo finished; exit 3")
    wire.wait_for(lambda: wire.results[command_id].started is not None, 3)
    wire.sock.shutdown(socket.SHUT_WR)
    result = wire.wait(command_id, 5)
    assert result.exit.exit_code == 3 and result.exit.cancelled is False
    assert bytes(result.stdout) == b"finished\n"
    # With nothing left running, the server closes the connection.
    with pytest.raises(ServerClosed):
        wire.next_event(2)


def test_half_closed_client_is_pinged_but_need_not_answer(graced, wires) -> None:
    """[message.ping.answer] with [close.client.eof]: the server probes a
    half-closed client with pings; the client can't answer (it sent its FIN)
    and doesn't, and the command still runs to its end."""
    wire = wires(graced)
    command_id = wire.run(shell="sleep 1.6; echo finished")
    wire.wait_for(lambda: wire.results[command_id].started is not None, 3)
    wire.sock.shutdown(socket.SHUT_WR)
    wire.conn.send_eof()  # our side can send nothing more, pongs included
    result = wire.wait(command_id, 6)
    assert bytes(result.stdout) == b"finished\n" and result.exit.exit_code == 0
    assert not result.exit.cancelled
    assert [e.type for e in wire.other_events].count("ping") >= 2


def test_half_close_with_stdin_open_keeps_the_command(graced, wires) -> None:
    """A half-close after stdin_eof: the command still reads what was sent."""
    wire = wires(graced)
    command_id = wire.run(["sh", "-c", "sleep 0.3; cat; echo end"], stdin=True)
    wire.stdin(command_id, b"data ")
    wire.stdin_eof(command_id)
    wire.sock.shutdown(socket.SHUT_WR)
    result = wire.wait(command_id, 5)
    assert bytes(result.stdout) == b"data end\n" and result.exit.exit_code == 0


def test_half_close_with_nothing_running_closes(graced, wires) -> None:
    wire = wires(graced)
    wire.sock.shutdown(socket.SHUT_WR)
    wire.expect_eof(1.0)


def test_cancel_while_a_grandchild_holds_the_pipes(start_server, wires, marker) -> None:
    """The process has exited and the server is draining (default 2 s grace):
    a cancel ends the command at once and kills the holder."""
    server = start_server("--kill-grace", str(KILL_GRACE))
    m = marker()
    wire = wires(server)
    command_id = wire.run(shell=f"sleep {m} & echo hi")
    wire.wait_for(lambda: bytes(wire.results[command_id].stdout) == b"hi\n", 3)
    assert wait_for_processes(m, 1)
    time.sleep(0.1)
    sent = time.monotonic()
    wire.send(Cancel(id=command_id))
    result = wire.wait(command_id, 3)
    assert time.monotonic() - sent < 1.0
    assert result.exit.exit_code == 0
    assert wait_gone(m, 1.0) == []
