"""[command.signals.default]: every command starts with default signal
dispositions and an empty mask, whatever rexecd inherited.

rexecd is started the way that broke it: as a background job of a
non-interactive shell (``sh -c 'rexecd … &'``, which ignores SIGINT and SIGQUIT
in the job, POSIX 2.11), and with signals blocked by whoever exec'd it. The
commands' own view (``/proc/self/status``) and a remote SIGINT/SIGQUIT are
checked, on pipes and on a pty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from launch import wait_for_ready, write_key_file

from rexec.protocol import Pty, Signal

from .wire import Wire

READY = re.compile(rb"rexecd listening on (\S+):(\d+)")
PID = re.compile(rb"pid=(\d+)")
#: Exec'd between the shell and rexecd: blocks these, then execs its arguments.
BLOCKING_EXEC = (
    "import os, signal, sys;"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP});"
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@dataclasses.dataclass
class Detached:
    """A rexecd that is not our child (its shell has exited): reached by PID."""

    host: str
    port: int
    key: bytes
    pid: int


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True


@pytest.fixture
def start_detached(tmp_path: Path) -> Iterator[Callable[..., Detached]]:
    started: list[int] = []

    def start(*, block_signals: bool = False) -> Detached:
        directory = tmp_path / f"detached{len(started)}"
        directory.mkdir()
        key_file = write_key_file(directory)
        daemon = [
            sys.executable, "-m", "rexec.daemon", "--host", "127.0.0.1", "--port", "0",
            "--key-file", str(key_file), "--audit-log", str(directory / "audit.jsonl"),
            "--state-dir", str(directory / "state"), "--shutdown-grace", "1",
        ]  # fmt: skip
        if block_signals:
            daemon = [sys.executable, "-c", BLOCKING_EXEC, *daemon]
        with open(directory / "stderr", "wb") as stderr:
            shell = subprocess.Popen(
                ["sh", "-c", f"{shlex.join(daemon)} & echo pid=$!"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
        match, output = wait_for_ready(shell, READY, 20)
        shell.wait(10)
        assert shell.stdout is not None
        shell.stdout.close()
        pid_match = PID.search(output)
        assert pid_match is not None, output
        started.append(int(pid_match.group(1)))
        assert match is not None, (output, (directory / "stderr").read_text())
        return Detached(match.group(1).decode(), int(match.group(2)),
                        bytes.fromhex(key_file.read_text().strip()), started[-1])  # fmt: skip

    yield start
    for pid in started:
        # Ours by construction (the PID its shell printed); TERM, then KILL.
        for signum, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            deadline = time.monotonic() + wait
            while not _gone(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _gone(pid):
                break


def _masks(wire: Wire, **fields: object) -> dict[str, int]:
    command_id = wire.run(["cat", "/proc/self/status"], **fields)
    result = wire.wait(command_id, 10)
    text = bytes(result.stdout).decode("ascii", "replace")
    return {name: int(value, 16) for name, value in re.findall(r"(Sig(?:Ign|Blk)):\s*(\w+)", text)}


@pytest.mark.parametrize("block_signals", [False, True], ids=["background-job", "blocked-mask"])
def test_commands_start_with_default_dispositions_and_an_empty_mask(
    start_detached, block_signals: bool
) -> None:
    server = start_detached(block_signals=block_signals)
    # The daemon itself inherited them (the shell's job ignores INT and QUIT):
    # the condition the fix is for really holds.
    status = Path(f"/proc/{server.pid}/status").read_text()
    assert "SigIgn" in status
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate()
        assert _masks(wire) == {"SigIgn": 0, "SigBlk": 0}
        # On a pty, the exec wrapper (a Python) must not pass on what Python
        # ignores at its own start (SIGPIPE, SIGXFSZ).
        assert _masks(wire, pty=Pty(rows=24, cols=80)) == {"SigIgn": 0, "SigBlk": 0}


@pytest.mark.parametrize("name", ["SIGINT", "SIGQUIT"])
def test_remote_sigint_and_sigquit_end_a_command(start_detached, name: str) -> None:
    server = start_detached()
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate()
        command_id = wire.run(["sleep", "30"])
        wire.wait_for(lambda: wire.results[command_id].started is not None, 5)
        wire.send(Signal(id=command_id, signal=name))
        result = wire.wait(command_id, 5)
        assert result.exit.signal_name == name and result.exit.exit_code is None
