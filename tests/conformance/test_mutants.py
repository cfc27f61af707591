"""The suite must catch a slip in rexecd itself: each mutant of the project's
own server (``mutant_rexecd.py``, one rule broken) fails the cases named for
that rule, and passes the others it is run with (so the mutant is otherwise
the working server, and the catch is the named case's, not an accident)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from forkserver import FORK_SERVER
from launch import wait_for_ready, write_key_file

from rexec.conformance import Verdict

from .conftest import FakeServer, run_cases, stop_fake
from .mutant_rexecd import MUTATIONS

MUTANT_REXECD = Path(__file__).with_name("mutant_rexecd.py")
READY_LINE = re.compile(rb"rexecd listening on (\S+):(\d+)")
KILL_GRACE = 1.0
#: The frame and idle timeouts the mutants run with, told to the suite too.
TIMEOUTS = {"frame_timeout": 1.0, "idle_timeout": 2.0}

#: mutation -> (cases that must fail, cases of neighbouring rules that must pass).
CAUGHT_BY: dict[str, tuple[set[str], set[str]]] = {
    "no_kill_grace": (
        {"timeout.kill.tree/grace"},
        {"timeout.kill.tree/term", "timeout.kill.tree/kill", "exit.timed_out"},
    ),
    "kill_leader_only": ({"timeout.kill.tree/term", "signal.group"}, {"exit.timed_out"}),
    "no_pong": ({"message.ping.answer/idle"}, {"exit.code/0"}),
    "ignore_output_limit": ({"output.limit", "exit.output_capped"}, {"output.limit/exact"}),
    "no_frame_deadline": ({"timeout.frame"}, {"timeout.idle"}),
    "no_idle_timeout": ({"timeout.idle"}, {"timeout.frame"}),
}

#: mutation -> timeout multiplier for its must-fail cases, where they can only
#: end by running out of time while an endless command's output streams at
#: full speed (a mutant that never caps output: three processes spinning for
#: the whole wait). The shorter wait gives the same verdict (more than 1000
#: bytes, no capped exit) for a fifth of the CPU; the must-pass cases keep
#: their full waits.
FAIL_MULTIPLIER = {"ignore_output_limit": 0.2}


def start_mutant(directory: Path, mutation: str) -> FakeServer:
    directory.mkdir(parents=True, exist_ok=True)
    key_file = write_key_file(directory)
    with open(directory / "rexecd.stderr", "wb") as stderr:
        process = FORK_SERVER.popen(
            [
                sys.executable,
                str(MUTANT_REXECD),
                mutation,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--key-file",
                str(key_file),
                "--state-dir",
                str(directory / "state"),
                "--kill-grace",
                str(KILL_GRACE),
                "--shutdown-grace",
                "1",
                "--env-allow",
                "REXEC_CONFORMANCE",
                *(f"--{name.replace('_', '-')}={value}" for name, value in TIMEOUTS.items()),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    match, line = wait_for_ready(process, READY_LINE, 30)
    if not match:
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(f"mutant {mutation} did not start: {line!r}")
    key = bytes.fromhex(key_file.read_text().strip())
    return FakeServer(match.group(1).decode(), int(match.group(2)), key, process)


def test_every_mutation_is_tested() -> None:
    assert set(CAUGHT_BY) == set(MUTATIONS)


@pytest.mark.parametrize("mutation", sorted(CAUGHT_BY))
def test_mutant_is_caught_by_the_named_case(mutation: str, tmp_path: Path) -> None:
    must_fail, must_pass = CAUGHT_BY[mutation]
    server = start_mutant(tmp_path, mutation)
    try:
        results = run_cases(
            server.host,
            server.port,
            server.key,
            ids=must_fail,
            multiplier=FAIL_MULTIPLIER.get(mutation, 1.0),
            kill_grace=KILL_GRACE,
            **TIMEOUTS,
        )
        results |= run_cases(
            server.host, server.port, server.key, ids=must_pass, kill_grace=KILL_GRACE, **TIMEOUTS
        )
    finally:
        stop_fake(server)
    verdicts = {cid: (r.verdict.value, r.observed) for cid, r in results.items()}
    assert {cid for cid in must_fail if results[cid].verdict is Verdict.FAIL} == must_fail, verdicts
    assert {cid for cid in must_pass if results[cid].verdict is Verdict.PASS} == must_pass, verdicts


def test_mutant_launcher_refuses_an_unknown_mutation() -> None:
    result = subprocess.run(
        [sys.executable, str(MUTANT_REXECD), "no-such-mutation"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "usage: mutant_rexecd.py" in result.stderr
