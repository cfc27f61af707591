"""A command that exited before its timeout is never reported as timed out,
even when rexecd learns of both at once (outsider5 F4: a daemon stopped
while the command ran, continued after its timeout, wrote ``exit_code 0``
with ``timed_out`` true)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from .wire import wait_for_processes


def _zombie(process: psutil.Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.02)
    return False


def test_an_exit_the_server_sees_with_its_overdue_timeout_wins(
    start_server, wires, marker, tmp_path: Path
) -> None:
    server = start_server("--kill-grace", "0.3", "--drain-grace", "0.3")
    wire = wires(server)
    go = tmp_path / marker()
    # The command waits for a file, then exits 0.
    waits = 'while [ ! -e "$1" ]; do sleep 0.02; done'
    command_id = wire.run(["sh", "-c", waits, "sh", str(go)], timeout=1.0)
    (leader,) = wait_for_processes(str(go), 1)
    started = time.monotonic()
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        go.touch()
        assert _zombie(leader, 10.0)  # it exited while rexecd was stopped
        time.sleep(max(0.0, 1.5 - (time.monotonic() - started)))  # and its timeout is overdue
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    result = wire.wait(command_id, 10)
    assert result.exit.exit_code == 0 and result.exit.signal is None
    assert result.exit.timed_out is False
