"""Helpers for tests that start servers as subprocesses (imported by the
conftest files; ``tests/`` is on ``sys.path`` as pytest's rootdir)."""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

#: util-linux's setpriv, which sets the parent-death signal and execs.
SETPRIV = shutil.which("setpriv")


def ended_with_this_process(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when the process that starts it
    dies, even by SIGKILL, when no fixture teardown runs: a server started by a
    test never outlives a killed pytest run (its worker process). SIGTERM, not
    SIGKILL, so that the server still ends the commands it started.

    The signal comes when the *thread* that started it ends: start servers
    from the test's thread, or from one that outlives them."""
    if SETPRIV is None:
        return argv
    return [SETPRIV, "--pdeathsig", "TERM", "--", *argv]


def write_key_file(directory: Path) -> Path:
    """A fresh shared key in ``directory/key``, mode 0600."""
    path = directory / "key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32) + "\n")
    return path


def wait_for_ready(
    process: subprocess.Popen[bytes], ready: re.Pattern[bytes], timeout: float
) -> tuple[re.Match[bytes] | None, bytes]:
    """Read ``process``'s stdout until a whole line matches ``ready``, it
    closes, or ``timeout`` seconds pass. Returns the match (None if it never
    came) and everything read, since servers may print other lines first."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    output = b""
    while time.monotonic() < deadline and not (ready.search(output) and output.endswith(b"\n")):
        if select.select([process.stdout], [], [], 0.1)[0]:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            output += chunk
    return ready.search(output), output


def stop_process(process: Any, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    """Stop a server we started (a ``subprocess.Popen`` or a ``ForkedProcess``)
    by its PID: ``sig`` unless it has ended already, up to ``timeout`` seconds
    to end, then SIGKILL. Its pipes are closed (else a ResourceWarning fails a
    later test). Returns its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()
    return process.returncode


def has_ipv6_loopback() -> bool:
    """Whether this host can bind ::1 (some containers have no IPv6 at all)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def read_audit_log(path: Path, settle: float = 0.05) -> list[dict[str, Any]]:
    """The audit records in ``path`` so far, read once the log has stopped
    growing for ``settle`` seconds (rexecd's writer thread writes a record a
    moment after the frames it describes may have left; bounded to 2 s)."""
    if not path.exists():
        return []
    deadline = time.monotonic() + 2.0
    text = path.read_text()
    while time.monotonic() < deadline:
        time.sleep(settle)
        again = path.read_text()
        if again == text:
            break
        text = again
    return [json.loads(line) for line in text.splitlines() if line]
