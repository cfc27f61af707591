"""Many commands on one connection, many connections, and the busy limits."""

from __future__ import annotations

import time

from rexec.protocol import Cancel

from .wire import connect, wait_for_processes, wait_gone


def payload(i: int) -> bytes:
    return (f"command {i}: " + "x" * (i * 37 % 500) + f" end {i}\n").encode()


def test_50_commands_interleaved_on_one_connection(server, wires) -> None:
    wire = wires(server)
    ids: dict[int, int] = {}
    with_stdin = []
    for i in range(50):
        if i % 3 == 0:
            command_id = wire.run(["cat"], stdin=True)
            with_stdin.append((command_id, i))
        else:
            command_id = wire.run(["printf", "%s", payload(i).decode()])
        ids[command_id] = i
    # Stdin for a third of them, interleaved: first halves, then second halves.
    for command_id, i in with_stdin:
        wire.stdin(command_id, payload(i)[:10])
    for command_id, i in reversed(with_stdin):
        wire.stdin(command_id, payload(i)[10:])
        wire.stdin_eof(command_id)
    results = wire.wait_all(ids, 30)
    for result in results:
        i = ids[result.id]
        assert result.exit is not None and result.exit.exit_code == 0, (i, result.error)
        assert bytes(result.stdout) == payload(i), i
        assert result.terminal_count == 1


def test_50_connections_at_once(server) -> None:
    wires = []
    try:
        for _ in range(50):
            wires.append(connect(server))
        ids = [wire.run(["sh", "-c", f"sleep 0.2; echo conn {n}"]) for n, wire in enumerate(wires)]
        for n, (wire, command_id) in enumerate(zip(wires, ids, strict=True)):
            result = wire.wait(command_id, 30)
            assert result.exit.exit_code == 0
            assert bytes(result.stdout) == f"conn {n}\n".encode()
    finally:
        for wire in wires:
            wire.close()


def test_max_commands_per_connection_gives_busy(start_server, wires, marker) -> None:
    server = start_server("--max-commands", "2", "--kill-grace", "0.3")
    m = marker()
    wire = wires(server)
    first = wire.run(["sleep", m])
    second = wire.run(["sleep", m])
    third = wire.run(["echo", "third"])
    sent = time.monotonic()
    result = wire.wait(third, 2)
    assert time.monotonic() - sent < 1.0
    assert result.error is not None and result.error.code == "busy"
    assert result.error.fatal is False and result.error.id == third
    assert result.started is None
    # The connection carries on: once one ends, a new run is accepted.
    wire.send(Cancel(id=first))
    assert wire.wait(first, 3).exit.cancelled is True
    fourth = wire.run(["echo", "fourth"])
    assert bytes(wire.wait(fourth, 3).stdout) == b"fourth\n"
    assert not wire.results[second].done
    wire.send(Cancel(id=second))
    wire.wait(second, 3)
    assert wait_gone(m, 1.3) == []
    # busy is never queued: the refused command never ran.
    assert b"third" not in bytes(wire.results[third].stdout)


def test_max_total_commands_across_connections(start_server, wires, marker) -> None:
    server = start_server("--max-total-commands", "2", "--kill-grace", "0.3")
    m = marker()
    a, b = wires(server), wires(server)
    a.run(["sleep", m])
    b.run(["sleep", m])
    assert len(wait_for_processes(m, 2)) == 2
    refused = a.wait(a.run(["true"]), 2)
    assert refused.error is not None and refused.error.code == "busy" and not refused.error.fatal
    c = wires(server)
    refused = c.wait(c.run(["true"]), 2)
    assert refused.error is not None and refused.error.code == "busy"


def test_busy_run_with_pipelined_stdin_is_harmless(start_server, wires, marker) -> None:
    """A client that sends stdin right after a run that is refused: the stdin
    frames name an ended command and are dropped."""
    server = start_server("--max-commands", "1")
    m = marker()
    wire = wires(server)
    wire.run(["sleep", m])
    refused = wire.run(["cat"], stdin=True)
    wire.stdin(refused, b"dropped")
    wire.stdin_eof(refused)
    result = wire.wait(refused, 2)
    assert result.error is not None and result.error.code == "busy"
    from rexec.protocol import Ping

    wire.send(Ping(seq=1))
    while wire.next_event(3).type != "pong":
        pass
