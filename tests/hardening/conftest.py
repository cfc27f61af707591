"""Fixtures of the hardening tests: a ``rexecd`` started with full control of
its argv, environment, keys and a shell wrapper (``ulimit``), plus probes of
its health, memory and descriptors.

The raw protocol client is tests/server/wire.py, imported, not copied.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
from forkserver import FORK_SERVER
from launch import ended_with_this_process, read_audit_log, stop_process, wait_for_ready
from server.conftest import marker, wires  # noqa: F401  (the fixtures, shared)
from server.wire import connect as open_wire

READY_LINE = re.compile(rb"rexecd listening on (\S+):(\d+)")
STARTUP_TIMEOUT = 15.0


def write_key(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key.hex() + "\n")
    return key


@dataclasses.dataclass
class Daemon:
    """A started ``rexecd``: what a client needs, and how to look at it."""

    host: str
    port: int
    key: bytes  # the key clients use by default (the first one)
    directory: Path
    audit_log: Path
    state_dir: Path
    process: subprocess.Popen[bytes]
    argv: list[str]
    #: What rexecd printed on stdout up to its ready line (``rexecd http on …``).
    startup_output: str = ""

    @property
    def pid(self) -> int:
        """The daemon's own pid (a ``sh -c 'ulimit; exec'`` wrapper execs into it)."""
        return self.process.pid

    def audit_records(self, settle: float = 0.05) -> list[dict[str, Any]]:
        """The records written so far (``read_audit_log``)."""
        return read_audit_log(self.audit_log, settle)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self.audit_records() if record.get("event") == name]

    def stderr(self) -> str:
        return (self.directory / "rexecd.stderr").read_text(errors="replace")

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def alive(self) -> bool:
        return self.process.poll() is None


def launch(
    directory: Path,
    *args: str,
    key: bool = True,
    env: dict[str, str] | None = None,
    shell_prefix: str | None = None,
    state_dir: Path | None = None,
    audit_to_stderr: bool = False,
    stderr: int | None = None,
) -> Daemon:
    """Start ``rexecd`` (port 0) and wait for its ready line.

    ``key``: write a fresh key file and pass ``--key-file`` (False when the
    args bring ``--config`` with ``[[keys]]``). ``shell_prefix``: run it as
    ``sh -c 'PREFIX; exec rexecd ...'`` (e.g. ``ulimit -n 4096``).
    ``audit_to_stderr``: ``--audit-log -`` (the records go to stderr).
    ``stderr``: where its stderr goes (``subprocess.PIPE``), instead of the
    ``rexecd.stderr`` file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "rexec.daemon", "--host", "127.0.0.1", "--port", "0"]
    client_key = b""
    if key:
        key_path = directory / "key"
        client_key = write_key(key_path)
        argv += ["--key-file", str(key_path)]
    audit_log = directory / "audit.jsonl"
    state_dir = state_dir or directory / "state"
    argv += ["--audit-log", "-" if audit_to_stderr else str(audit_log)]
    argv += ["--state-dir", str(state_dir), *args]
    command: list[str] = argv
    if shell_prefix is not None:
        command = ["sh", "-c", f'{shell_prefix}; exec "$@"', "sh", *argv]
    with open(directory / "rexecd.stderr", "ab") as stderr_file:
        # A shell wrapper needs a real exec; rexecd alone comes from the fork server.
        popen = subprocess.Popen if shell_prefix is not None else FORK_SERVER.popen
        process = popen(
            ended_with_this_process(command) if shell_prefix is not None else command,
            stdout=subprocess.PIPE,
            stderr=stderr if stderr is not None else stderr_file,
            env=env if env is not None else dict(os.environ),
        )  # fmt: skip
    match, line = wait_for_ready(process, READY_LINE, STARTUP_TIMEOUT)
    if not match:
        process.kill()
        process.wait()
        process.stdout.close()
        stderr = (directory / "rexecd.stderr").read_text(errors="replace")
        raise RuntimeError(f"rexecd did not start: {line!r} {stderr}")
    host = match.group(1).decode().strip("[]")
    return Daemon(
        host, int(match.group(2)), client_key, directory, audit_log, state_dir, process, argv,
        line.decode(errors="replace"),
    )  # fmt: skip


def stop(daemon: Daemon, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
    """Stop a daemon we started, by its PID (``stop_process``)."""
    return stop_process(daemon.process, sig, timeout)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Factory: ``daemon(*flags, key=True, env=None, shell_prefix=None)``; every
    daemon started is stopped (by PID) at teardown."""
    started: list[Daemon] = []

    def start(*args: str, **kwargs: Any) -> Daemon:
        instance = launch(tmp_path / f"d{len(started)}", *args, **kwargs)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        stop(instance)


def healthy(target: Daemon, timeout: float = 5.0) -> bool:
    """A fresh client authenticates and runs ``true`` with exit 0."""
    with open_wire(target) as wire:
        result = wire.wait(wire.run(["true"]), timeout)
    return result.exit is not None and result.exit.exit_code == 0


def run(
    target: Daemon,
    argv: Sequence[str] | None = None,
    *,
    key: bytes | None = None,
    wait: float = 10.0,
    **fields: Any,
) -> Any:
    """One command on a fresh connection; returns its CommandResult."""
    with open_wire(target, key=key) as wire:
        return wire.wait(wire.run(list(argv) if argv is not None else None, **fields), wait)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
