"""Fixtures for the batch tests: a pool of real ``rexecd`` servers on
127.0.0.2, 127.0.0.3, … sharing one key and one port (so their names fold
as ``127.0.0.[2-4]:PORT``), the fleet emulator (``bench/fleet.py``) for
hundreds of servers, and the ``rexec batch`` CLI as a subprocess."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import forkserver
import pytest


def _load(path: Path, name: str):  # a module by path, under its own name
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_ROOT = Path(__file__).resolve().parents[2]
start_rexecd = _load(_ROOT / "tests" / "conftest.py", "_rexec_tests_conftest").start_rexecd
# The fleet emulator's driver, shared with the benchmarks (stdlib only).
_fleet_measure = _load(_ROOT / "bench" / "fleet_measure.py", "_rexec_bench_fleet_measure")
Emulator = _fleet_measure.Emulator
stop_processes = _fleet_measure.stop_processes
free_port = _fleet_measure.free_port
#: A process's peak RSS in KiB, from ``VmHWM`` (``ru_maxrss`` carries the
#: forking parent's peak).
peak_rss_kib = _fleet_measure.peak_rss_kib

#: Bound on every CLI run in these tests.
CLI_TIMEOUT = 60


@dataclasses.dataclass
class Pool:
    servers: list  # RunningServer (tests/conftest.py)
    key_file: Path
    port: int

    @property
    def spec(self) -> str:
        """``--hosts`` for all of them, in node-set notation."""
        last = self.servers[-1].host.rsplit(".", 1)[1]
        return f"127.0.0.[2-{last}]:{self.port}"

    def label(self, index: int) -> str:
        return f"{self.servers[index].host}:{self.port}"


def _start_pool(directory: Path, n: int, extra: tuple[str, ...]) -> Pool:
    hosts = [f"127.0.0.{2 + i}" for i in range(n)]
    port = free_port(hosts)
    args = ("--port", str(port), *extra)
    # Each server runs in its own directory: a job tells them apart by
    # /proc/$PPID/cwd (test_batch_cli.ON_FIRST).
    first = start_rexecd(directory / "server0", *args, host=hosts[0])
    servers = [first]
    try:
        for i, host in enumerate(hosts[1:], 1):
            servers.append(
                start_rexecd(
                    directory / f"server{i}",
                    *args,
                    host=host,
                    key_file=first.key_file,
                )
            )
    except BaseException:
        _stop_pool(servers)
        raise
    return Pool(servers, first.key_file, port)


def _stop_pool(servers: list) -> None:
    for server in servers:
        if server.process.poll() is None:
            server.stop()
        if server.process.stdout:
            server.process.stdout.close()


@pytest.fixture
def start_pool(tmp_path: Path) -> Iterator[Callable[..., Pool]]:
    """Factory: ``start_pool(n=3, *rexecd_args)`` → a ``Pool`` of n servers
    of this test alone (it may kill them); all stopped by PID at teardown."""
    started: list = []

    def start(n: int = 3, *extra: str) -> Pool:
        pool = _start_pool(tmp_path / f"pool{len(started)}", n, extra)
        started.extend(pool.servers)
        return pool

    yield start
    _stop_pool(started)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """Three servers, 127.0.0.2–4, shared by a module's tests (which must
    leave them running), quick kill grace, and GREETING among the names a
    job's env may set."""
    shared = _start_pool(
        tmp_path_factory.mktemp("pool"), 3, ("--kill-grace", "0.5", "--env-allow", "GREETING")
    )
    yield shared
    _stop_pool(shared.servers)


def batch_argv(pool: Pool | Emulator | None, *args: str) -> list[str]:
    key = ["--key-file", str(pool.key_file)] if pool is not None else []
    return [sys.executable, "-m", "rexec_client.cli", "batch", *key, *args]


def run_batch_cli(
    pool: Pool | Emulator | None,
    *args: str,
    input: str = "",
    text: bool = True,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess:
    """``rexec batch`` with the pool's key, ``input`` on its stdin; output
    as text (bytes with ``text=False``); bounded."""
    # Forked from a fork server that has imported the program: each run
    # skips its imports (forkserver.CLI_FORK_SERVER).
    return forkserver.run(
        batch_argv(pool, *args),
        input=input,
        text=text,
        timeout=timeout,
        server=forkserver.CLI_FORK_SERVER,
    )


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_joblog(path: Path) -> list[dict[str, str]]:
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    return [dict(zip(header, row, strict=True)) for row in rows]


def marker_counts(directory: Path) -> dict[str, int]:
    """Lines each job appended to its marker file (job id → runs)."""
    return {p.name: len(p.read_text().splitlines()) for p in directory.iterdir()}


@pytest.fixture
def start_fleet() -> Iterator[Callable[..., Emulator]]:
    """Factory: ``start_fleet(n, *fleet_args)`` → a running fleet emulator
    (``bench/fleet_measure.Emulator``) of n servers; each stopped by its PID
    (SIGTERM) at teardown."""
    started: list[Emulator] = []

    def start(n: int, *extra: str) -> Emulator:
        fleet = Emulator(n, *extra, timeout=60)
        started.append(fleet)
        return fleet

    yield start
    stop_processes([fleet.process for fleet in started])
