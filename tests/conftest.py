"""Shared fixtures: a real ``rexecd`` on 127.0.0.1, port 0, in a subprocess.

``rexecd`` prints one line ``rexecd listening on HOST:PORT`` on stdout once it
accepts connections; the fixture waits for it (bounded) and reads the port.
Each server gets its own key file and audit log in a temporary directory, and
is stopped by its PID at teardown.

Every test also runs with its own HOME and XDG directories (``isolated_home``),
so that tests running side by side under pytest-xdist never share a config
file, a key, a known-servers file or a shell history, and none touches the
real ones of whoever runs the suite.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from forkserver import FORK_SERVER, ForkedProcess
from launch import (
    ended_with_this_process,
    read_audit_log,
    stop_process,
    wait_for_ready,
    write_key_file,
)

#: The XDG base directories: unset, each is its default beneath HOME.
XDG_DIRECTORIES = ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")

READY_LINE = re.compile(rb"rexecd listening on (\S+):(\d+)")
STARTUP_TIMEOUT = 15.0


@dataclasses.dataclass
class RunningServer:
    """A started ``rexecd`` and what a client needs to reach it."""

    host: str
    port: int
    key_file: Path
    audit_log: Path
    process: ForkedProcess
    #: What rexecd printed on stdout up to its ready line (other listeners'
    #: addresses, e.g. ``rexecd http on HOST:PORT``, come before it).
    startup_output: str = ""

    @property
    def address(self) -> str:
        """``HOST:PORT`` as the CLI takes it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.key_file.read_text().strip())

    def audit_records(self) -> list[dict[str, object]]:
        """The records written so far (``read_audit_log``)."""
        return read_audit_log(self.audit_log)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the server by its PID and wait for it; returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_rexecd(
    directory: Path,
    *extra_args: str,
    host: str = "127.0.0.1",
    key_file: Path | None = None,
    real_exec: bool = False,
) -> RunningServer:
    """Start ``rexecd`` with a fresh key (unless given) and wait until it listens.

    It is forked from a fork server that has imported rexec already
    (tests/forkserver.py): the same program as ``python -m rexec.daemon``,
    without a third of a second of start-up CPU per server. ``real_exec``:
    exec it instead, for a test that reads its ``/proc/PID/cmdline``. Its
    working directory is ``directory``: a command can tell which server ran
    it by ``/proc/$PPID/cwd``."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file = key_file or write_key_file(directory)
    audit_log = directory / "audit.jsonl"
    argv = [
        sys.executable,
        "-m",
        "rexec.daemon",
        "--host",
        host,
        "--port",
        "0",
        "--key-file",
        str(key_file),
        "--audit-log",
        str(audit_log),
        "--state-dir",
        str(directory / "state"),
        # Short, so that stopping a server at teardown doesn't wait the default
        # 10 s for a command a test left running; tests that are about the
        # grace pass their own (the last flag wins).
        "--shutdown-grace",
        "1",
        *extra_args,
    ]
    with open(directory / "rexecd.stderr", "wb") as stderr_file:
        popen = subprocess.Popen if real_exec else FORK_SERVER.popen
        process = popen(
            ended_with_this_process(argv) if real_exec else argv,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            cwd=directory,
        )
    match, line = wait_for_ready(process, READY_LINE, STARTUP_TIMEOUT)
    if not match:
        process.kill()
        process.wait()
        process.stdout.close()  # else a ResourceWarning fails a later test
        stderr = (directory / "rexecd.stderr").read_text(errors="replace")
        raise RuntimeError(f"rexecd did not start: {line!r} {stderr}")
    bound_host = match.group(1).decode().strip("[]")
    return RunningServer(
        bound_host, int(match.group(2)), key_file, audit_log, process, line.decode(errors="replace")
    )


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh, empty HOME for this test (and every process it starts), the
    XDG directories unset so that they default to beneath it (a test that
    sets HOME itself moves them along); ``tmp_path`` stays as empty as the
    test expects."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in XDG_DIRECTORIES:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``start_server(*extra_rexecd_args, host=..., real_exec=...)``
    → RunningServer (``start_rexecd``).

    Every server started is stopped at teardown."""
    servers: list[RunningServer] = []

    def start(
        *extra_args: str,
        host: str = "127.0.0.1",
        key_file: Path | None = None,
        real_exec: bool = False,
    ) -> RunningServer:
        server = start_rexecd(
            tmp_path / f"server{len(servers)}",
            *extra_args,
            host=host,
            key_file=key_file,
            real_exec=real_exec,
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_process(server.process)


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """One running ``rexecd`` with default settings."""
    return start_server()


def start_with_config(directory: Path, config: Path, *extra: str) -> subprocess.Popen[bytes]:
    """Start rexecd with ``--config`` and no ``--key-file``; wait until it listens.
    Returns the process; its startup stdout is in ``process.startup_output``."""
    argv = [
        sys.executable,
        "-m",
        "rexec.daemon",
        "--config",
        str(config),
        "--port",
        "0",
        "--audit-log",
        str(directory / "audit.jsonl"),
        "--state-dir",
        str(directory / "state"),
        *extra,
    ]
    with open(directory / "rexecd.stderr", "wb") as stderr:
        process = FORK_SERVER.popen(argv, stdout=subprocess.PIPE, stderr=stderr)
    match, output = wait_for_ready(process, READY_LINE, STARTUP_TIMEOUT)
    if not match:
        process.kill()
        process.wait()
        raise RuntimeError(f"rexecd did not start: {(directory / 'rexecd.stderr').read_text()}")
    process.startup_output = output.decode()  # type: ignore[attr-defined]
    return process


@pytest.fixture
def configured_servers() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Factory around ``start_with_config``; every process is stopped by PID."""
    started: list[subprocess.Popen[bytes]] = []

    def start(directory: Path, config: Path, *extra: str) -> subprocess.Popen[bytes]:
        process = start_with_config(directory, config, *extra)
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process(process)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per core. Much of a test's time is spent
    waiting (for a deadline, a grace period, a peer that never answers): a
    second worker per core runs meanwhile. Every test has its own port,
    directories and HOME, so workers never meet."""
    return 2 * len(os.sched_getaffinity(0))


#: The tests that take longest (wall time measured, run under xdist), started
#: first so that the run does not end waiting for one of them on a single
#: worker; those that mostly wait (for a deadline, a reaction that never
#: comes) between those that keep a core busy, so that the first minute keeps
#: the cores busy too. The breakage run (a core for ~20 s) is started by one
#: test early; the other breakage tests come in their file's turn, long after
#: it, so that no worker waits for it (run_once.py).
RUN_FIRST = (
    "tests/conformance/test_broken.py::test_unbroken_fake_server_passes",  # waits
    "tests/hardening/test_load.py::test_soak_every_exit_and_digest",
    "tests/conformance/test_against_rexecd.py::test_rexecd_passes_every_must",  # waits
    "tests/conformance/test_broken.py::test_failure_names_what_the_server_sent",  # breakage run
    "tests/conformance/test_client_check.py::test_broken_client_is_caught[fragile_reader]",  # waits
    "tests/test_bench_smoke.py",
    "tests/conformance/test_cli.py::test_should_failure_fails_only_in_strict_mode",  # waits
    "tests/newuser/test_scripts.py::test_serve_on_a_fresh_clone",
    "tests/hardening/test_stateful.py::test_state_machine",  # waits
    "tests/transfer/test_hardening.py::test_a_racing_swap_never_writes_outside",
    "tests/conformance/test_client_check.py::test_broken_client_is_caught",  # waits
    "tests/conformance/test_mutants.py::test_mutant_is_caught_by_the_named_case",  # waits
    "tests/batch/test_batch_shutdown.py::test_a_hung_server_ends_its_jobs",  # waits
    "tests/client/test_transfer_stall.py::test_a_recursive_get_from_a_hung_server",  # waits
    "tests/batch/test_batch_shutdown.py::test_sigterm_ends_the_batch_143",  # waits
    "tests/transfer/test_hardening.py::test_a_put_in_one_byte_frames",
    "tests/hardening/test_load.py::test_1000_concurrent_connections",
    "tests/transfer/test_put_get.py::test_128_mib_round_trip_with_bounded_memory",
    "tests/client/test_client_api.py::test_64_mib_through_cat_is_byte_identical",
    "tests/server/test_stdin.py::test_64_mib_through_cat",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of RUN_FIRST first, in its order; the rest as collected."""

    def rank(item: pytest.Item) -> int:
        return next(
            (n for n, prefix in enumerate(RUN_FIRST) if item.nodeid.startswith(prefix)),
            len(RUN_FIRST),
        )

    items.sort(key=rank)
