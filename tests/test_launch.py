"""The servers the fixtures start never outlive the process that started them:
when a pytest run is killed (no teardown runs), each gets SIGTERM and ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

TESTS = Path(__file__).parent

#: launcher -> the Python that starts one server in DIRECTORY with it.
LAUNCHERS = {
    "rexecd": "from conftest import start_rexecd as start; server = start(DIRECTORY)",
    "hardening": "from hardening.conftest import launch; server = launch(DIRECTORY)",
    "broken_server": (
        "from conformance.conftest import start_fake; server = start_fake(DIRECTORY, [])"
    ),
    "mutant_rexecd": (
        "from conformance.test_mutants import start_mutant; "
        "server = start_mutant(DIRECTORY, 'no_pong')"
    ),
}


def gone(pid: int) -> bool:
    """No such process, or only a zombie nobody has reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_a_server_ends_when_the_test_process_is_killed(launcher: str, tmp_path: Path) -> None:
    script = (
        f"import sys, time; sys.path.insert(0, {str(TESTS)!r}); "
        f"from pathlib import Path; DIRECTORY = Path({str(tmp_path / 'server')!r}); "
        f"{LAUNCHERS[launcher]}; "
        "print(server.process.pid, flush=True); time.sleep(120)"
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=tmp_path, text=True
    )
    server_pid = 0
    try:
        assert starter.stdout is not None
        server_pid = int(starter.stdout.readline())
        assert not gone(server_pid)
        starter.kill()  # as a killed pytest run: no fixture teardown
        starter.wait(timeout=15)
        deadline = time.monotonic() + 15
        while not gone(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(server_pid), (
            f"{launcher} (PID {server_pid}) outlived the process that started it"
        )
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        starter.stdout.close()
        if server_pid and not gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)
