"""The start-up sweep of a state directory right after ``kill -9`` of the
daemon that wrote it, while that daemon is still a zombie (its parent has not
reaped it yet): the zombie cleans up nothing, so its process groups are ended
(outsider5 F25). Records of a daemon really running are left, and the new one
says so."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.conftest import RunningServer

from .wire import connect, processes_with, wait_for_processes, wait_gone

WAIT = 20.0


def state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def start_sleeping(server: RunningServer, marker: str):
    wire = connect(server)
    command = wire.run(["sleep", marker])
    wire.wait_for(lambda: wire.results[command].started is not None, WAIT)
    assert wait_for_processes(marker, 1, WAIT)
    return wire


def test_a_restart_while_the_killed_daemon_is_a_zombie_sweeps_its_orphans(
    start_server, tmp_path: Path, marker
) -> None:
    # Exec'd by this process, which reaps it only when told: a zombie on demand.
    first = start_server(real_exec=True)
    state_dir = first.audit_log.parent / "state"
    orphan = marker()
    start_sleeping(first, orphan).close()
    first.process.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + WAIT
    while state(first.process.pid) != "Z":
        assert time.monotonic() < deadline, "the killed daemon never became a zombie"
        time.sleep(0.01)
    try:
        assert processes_with(orphan), "the orphan should outlive its daemon"
        second = start_server("--state-dir", str(state_dir))
        assert state(first.process.pid) == "Z"  # still unreaped while the second started
        assert wait_gone(orphan, WAIT) == []
        deadline = time.monotonic() + WAIT
        while not [r for r in second.audit_records() if r["event"] == "sweep"]:
            assert time.monotonic() < deadline, "no sweep record"
            time.sleep(0.05)
        sweeps = [r for r in second.audit_records() if r["event"] == "sweep"]
        assert len(sweeps[0]["killed_process_groups"]) == 1
        assert list(state_dir.iterdir()) == []
    finally:
        first.process.wait(WAIT)


def test_records_of_a_running_daemon_are_left_and_said_so(start_server, marker) -> None:
    first = start_server()
    state_dir = first.audit_log.parent / "state"
    running = marker()
    wire = start_sleeping(first, running)
    try:
        second = start_server("--state-dir", str(state_dir))
        stderr = second.audit_log.parent / "rexecd.stderr"
        line = (
            f"left 1 recorded process group(s) of a running rexecd (pid {first.process.pid}) "
            f"in {state_dir}"
        )
        deadline = time.monotonic() + WAIT  # stderr is written by a thread of its own
        while line not in stderr.read_text():
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.05)
        assert processes_with(running), "a running daemon's command was ended"
        assert len(list(state_dir.iterdir())) == 1
    finally:
        wire.close()
