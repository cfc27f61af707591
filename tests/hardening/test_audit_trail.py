"""The audit trail never blocks the daemon (issue 11, item 4), and a refused
command is recorded as refused only.

The log's reader stops (a stuck log shipper on a FIFO; stderr on a pipe
nobody reads): the daemon goes on serving, running commands finish, health
checks answer, and new commands are refused with ``audit.unavailable`` once a
record has waited longer than the audit timeout. When the reader comes back,
commands are accepted again and the trail is whole and in order.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rexec.protocol import Ping, Pong
from rexec.server.audit import AuditError, AuditLog

from .conftest import Daemon, launch, open_wire, stop, wait_until

AUDIT_TIMEOUT = 0.5
#: Commands tried at most before the log's buffer must have stalled (a pipe
#: holds 64 KiB, about 150 commands' records).
MAX_COMMANDS = 3000


def health(server: Daemon, timeout: float = 2.0) -> tuple[int, bytes]:
    """``/healthz``'s status and body."""
    match = re.search(r"rexecd http on (\S+):(\d+)", server.startup_output)
    assert match, server.startup_output
    conn = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run_until_refused(server: Daemon, marker_dir: Path) -> tuple[int, Any]:
    """Run ``touch`` commands one after another until one is refused (each
    answer bounded to 5 s: a daemon that hangs fails here). Returns how many
    ran and the refusal."""
    with open_wire(server) as wire:
        for n in range(MAX_COMMANDS):
            result = wire.wait(wire.run(["touch", str(marker_dir / f"ran-{n}")]), 5)
            if result.error is not None:
                return n, result
            assert result.exit.exit_code == 0
    raise AssertionError(f"{MAX_COMMANDS} commands ran: the stalled log was never noticed")


def check_served_while_stalled(server: Daemon, running: Any, wire: Any, marker_dir: Path) -> None:
    """What must go on while the log is stuck."""
    # Health checks answer, and say that no command can start (a load
    # balancer takes the node out) and why.
    status, body = health(server)
    assert status == 503 and body.startswith(b"audit unavailable: "), body
    # A new connection authenticates and answers pings.
    with open_wire(server) as other:
        other.send(Ping(seq=7))
        assert other.next_event(2) == Pong(seq=7)
        # New commands are refused, and nothing runs.
        refused = other.wait(other.run(["touch", str(marker_dir / "refused")]), 5)
        assert refused.error.code == "audit.unavailable" and refused.error.fatal is False
        assert refused.started is None
    assert not (marker_dir / "refused").exists()
    # The command that was running before the stall finishes normally.
    result = wire.wait(running, 10)
    assert result.exit is not None and result.exit.exit_code == 0, result.frames
    assert bytes(result.stdout) == b"survived\n"


def check_trail(lines: list[str], ran: int) -> None:
    """Whole records, in order: every command that ran has its exec then its
    exit; the refused ones only a refusal."""
    records = [json.loads(line) for line in lines]
    execs = [r["id"] for r in records if r["event"] == "exec"]
    exits = [r["id"] for r in records if r["event"] == "exit"]
    assert len(execs) >= ran + 2  # the flood, the long command, the one after recovery
    assert sorted(exits) == sorted(execs)
    for command_id in set(execs):
        events = [r["event"] for r in records if r.get("id") == command_id and "session" in r]
        assert events.index("exec") < events.index("exit"), events
    refusals = [r for r in records if r["event"] == "refused"]
    assert refusals and all(r["code"] == "audit.unavailable" for r in refusals)
    refused_ids = {(r["session"], r["id"]) for r in refusals}
    assert not refused_ids & {(r["session"], r["id"]) for r in records if r["event"] == "exec"}
    times = [r["time"] for r in records]
    assert times == sorted(times), "records out of order"


@pytest.fixture
def fifo_log(tmp_path: Path) -> Iterator[tuple[Path, Path, Callable[[], subprocess.Popen[bytes]]]]:
    """A FIFO and a log shipper (``cat FIFO > SINK``) to read it; every
    shipper started is resumed and ended at teardown."""
    fifo, sink = tmp_path / "audit.fifo", tmp_path / "shipped.jsonl"
    os.mkfifo(fifo)
    shippers: list[subprocess.Popen[bytes]] = []

    def ship() -> subprocess.Popen[bytes]:
        with open(sink, "ab") as out:
            shipper = subprocess.Popen(["cat", str(fifo)], stdout=out)
        shippers.append(shipper)
        return shipper

    yield fifo, sink, ship
    for shipper in shippers:
        shipper.send_signal(signal.SIGCONT)
        try:
            shipper.wait(15)
        except subprocess.TimeoutExpired:
            shipper.kill()
            shipper.wait()


def test_a_stalled_fifo_reader_never_freezes_the_daemon(daemon, fifo_log, tmp_path: Path) -> None:
    fifo, sink, ship = fifo_log
    shipper = ship()
    server = daemon(
        "--audit-log", str(fifo), "--audit-timeout", str(AUDIT_TIMEOUT), "--http", "127.0.0.1:0"
    )
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    with open_wire(server) as wire:
        running = wire.run(["sh", "-c", "sleep 1.5; echo survived"])
        shipper.send_signal(signal.SIGSTOP)  # the log shipper is stuck
        ran, refusal = run_until_refused(server, marker_dir)
        assert refusal.error.code == "audit.unavailable" and refusal.started is None
        assert not (marker_dir / f"ran-{ran}").exists()
        check_served_while_stalled(server, running, wire, marker_dir)
    shipper.send_signal(signal.SIGCONT)
    # Accepted again once what was queued is written.
    assert wait_until(lambda: _runs(server), 10, interval=0.1)
    assert health(server) == (200, b"ok\n")
    assert stop(server) == 0
    shipper.wait(10)  # the daemon closed the FIFO: the shipper sees its end
    check_trail(sink.read_text().splitlines(), ran)


def test_stderr_on_a_pipe_nobody_reads(tmp_path: Path) -> None:
    server = launch(
        tmp_path / "d", "--audit-timeout", str(AUDIT_TIMEOUT), "--http", "127.0.0.1:0",
        audit_to_stderr=True, stderr=subprocess.PIPE,
    )  # fmt: skip
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    drained: list[bytes] = []
    try:
        with open_wire(server) as wire:
            running = wire.run(["sh", "-c", "sleep 1.5; echo survived"])
            ran, refusal = run_until_refused(server, marker_dir)
            assert refusal.error.code == "audit.unavailable"
            check_served_while_stalled(server, running, wire, marker_dir)
        # Someone reads stderr again.
        assert server.process.stderr is not None
        reader = threading.Thread(target=lambda: drained.append(server.process.stderr.read()))
        reader.start()
        assert wait_until(lambda: _runs(server), 10, interval=0.1)
        assert stop(server) == 0
        reader.join(10)
    finally:
        stop(server)
    lines = [line for line in b"".join(drained).decode().splitlines() if line.startswith("{")]
    check_trail(lines, ran)


def _runs(server: Daemon) -> bool:
    with open_wire(server) as wire:
        result = wire.wait(wire.run(["true"]), 5)
    return result.exit is not None and result.exit.exit_code == 0


def test_full_buffer_counts_lost_records_and_keeps_order(tmp_path: Path) -> None:
    """The log's own bookkeeping, on a real pipe whose reader stops: gate
    records are refused while it is full, other records are counted and the
    count is written once there is room, and nothing is reordered."""
    read_end, write_end = os.pipe()
    log = AuditLog(f"/proc/self/fd/{write_end}", timeout=60.0, max_buffer=8192)
    os.close(write_end)  # the log opened its own descriptor of the pipe
    try:
        sent = 0
        while log.unavailable(200) is None:  # fills the pipe (64 KiB), then the buffer
            log.write("exec", id=sent, pad="x" * 150)
            sent += 1
            assert sent < 10_000
        with pytest.raises(AuditError, match="buffer is full"):
            log.write("exec", id=sent)
        for n in range(5):
            log.try_write("disconnect", id=n)  # no room: counted
        received = b""
        deadline = time.monotonic() + 10
        while received.count(b"\n") < sent and time.monotonic() < deadline:
            received += os.read(read_end, 1 << 16)
        records = [json.loads(line) for line in received.splitlines()]
        assert [r["id"] for r in records] == list(range(sent))
        # The writer counts a batch as written just after write() returns.
        deadline = time.monotonic() + 10
        while log.unavailable(200) is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        log.write("exec", id=sent)  # room again: the count goes first
        assert log.flush(5)
        tail = [json.loads(line) for line in os.read(read_end, 1 << 16).splitlines()]
        assert [(r["event"], r.get("records"), r.get("id")) for r in tail] == [
            ("audit_lost", 5, None),
            ("exec", None, sent),
        ]
    finally:
        log.close(1.0)
        os.close(read_end)


def test_refused_commands_get_a_refused_record_only(daemon, tmp_path: Path) -> None:
    server = daemon()
    refusals = {
        "env.forbidden": {"argv": ["true"], "env": {"LD_PRELOAD": "/x.so"}},
        "cwd.invalid": {"argv": ["true"], "cwd": str(tmp_path / "missing")},
        "spawn.not_found": {"argv": ["no-such-program-rexec"]},
        "spawn.permission_denied": {"argv": [str(tmp_path)]},
    }
    with open_wire(server) as wire:
        for code, fields in refusals.items():
            argv = fields.pop("argv")
            result = wire.wait(wire.run(argv, **fields), 5)
            assert result.error is not None and result.error.code == code, result.frames
        assert wire.wait(wire.run(["true"]), 5).exit.exit_code == 0
    records = server.audit_records()
    assert [r["code"] for r in records if r["event"] == "refused"] == list(refusals)
    assert [r["argv"] for r in records if r["event"] == "exec"] == [["true"]]
