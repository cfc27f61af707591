"""Fixtures for the conformance suite's own tests: the broken (fake) server in
a subprocess, and an in-process runner that returns verdicts by case id."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest
from forkserver import FORK_SERVER
from launch import stop_process, wait_for_ready, write_key_file

from rexec.conformance import Options, Result, Target, all_cases, run_suite
from rexec.conformance import select as select_cases

BROKEN_SERVER = Path(__file__).with_name("broken_server.py")
READY = re.compile(rb"listening on (\S+):(\d+)")
#: Settings the fake server runs with, and the suite is told about. The auth
#: deadline leaves room for frame.stream.chunking/every-byte, which writes the
#: auth a byte at a time: under load 1 s was not always enough.
FAKE_TIMING = {"auth_deadline": 3.0, "kill_grace": 1.0, "drain_grace": 1.0}


@dataclasses.dataclass
class FakeServer:
    host: str
    port: int
    key: bytes
    process: subprocess.Popen[bytes]


def start_fake(directory: Path, flags: list[str], *extra: str) -> FakeServer:
    directory.mkdir(parents=True, exist_ok=True)
    key_file = directory / "key" if (directory / "key").exists() else write_key_file(directory)
    with open(directory / "fake.stderr", "ab") as stderr:
        process = FORK_SERVER.popen(
            [
                sys.executable,
                str(BROKEN_SERVER),
                "--key-file",
                str(key_file),
                "--port",
                "0",
                "--break",
                ",".join(flags),
                "--auth-timeout",
                str(FAKE_TIMING["auth_deadline"]),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            cwd=directory,
        )
    match, line = wait_for_ready(process, READY, 15)
    if not match:
        process.kill()
        process.wait()
        process.stdout.close()  # else a ResourceWarning fails a later test
        raise RuntimeError(f"fake server did not start: {line!r}")
    key = bytes.fromhex(key_file.read_text().strip())
    return FakeServer(match.group(1).decode(), int(match.group(2)), key, process)


def stop_fake(server: FakeServer) -> None:
    """Stop the fake server; on SIGTERM it kills every command it started,
    whatever its flags, so no breakage leaks processes past the test."""
    stop_process(server.process, timeout=5)


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Callable[..., FakeServer]]:
    started: list[FakeServer] = []

    def start(flags: list[str] | tuple[str, ...] = (), *extra: str) -> FakeServer:
        server = start_fake(tmp_path / f"fake{len(started)}", list(flags), *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_fake(server)


async def run_cases_async(
    host: str,
    port: int,
    key: bytes,
    patterns: list[str] | None = None,
    *,
    ids: Collection[str] = (),
    **timing: float,
) -> dict[str, Result]:
    """Run the cases ``patterns`` select (globs on case or requirement ids,
    as ``rexec-conformance --case``; every case when None), or with ``ids``
    the cases of exactly those ids (a requirement's id as a pattern selects
    its sub-cases too); results by case id."""
    if ids:
        cases = [case for case in all_cases() if case.id in ids]
        assert {case.id for case in cases} == set(ids), set(ids) - {case.id for case in cases}
    else:
        cases = select_cases(all_cases(), patterns, None)
    options = Options(key=key, **timing)
    results = await run_suite(cases, Target(host, port), options)
    return {r.case.id: r for r in results}


def run_cases(
    host: str,
    port: int,
    key: bytes,
    patterns: list[str] | None = None,
    *,
    ids: Collection[str] = (),
    **timing: float,
) -> dict[str, Result]:
    """``run_cases_async`` in a fresh event loop."""
    return asyncio.run(run_cases_async(host, port, key, patterns, ids=ids, **timing))
