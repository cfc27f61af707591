"""``rexec-conformance --client``: our own client library passes every
scenario, and each deliberately broken copy of it (client_adapter.py's
mutations) fails the scenarios named for the rule it breaks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from rexec.conformance.client_check import CLIENT_SCENARIOS, check_client
from rexec.keyfile import load_key

from .client_adapter import MUTATIONS

ADAPTER = Path(__file__).with_name("client_adapter.py")

#: mutation -> scenario ids that must fail, each with words its faults must hold.
CAUGHT_BY: dict[str, dict[str, str]] = {
    "fragile_reader": {"split-handshake": "", "every-byte": ""},
    "no_pong": {
        "coalesced-handshake": "[message.ping.answer]",
        "interleave": "[message.ping.answer]",
        "ping": "[message.ping.answer]",
    },
    "output_to_newest": {"interleave": "interleave-a: stdout"},
    "unknown_code_fatal": {"coalesced-handshake": "", "unknown-error": "[error.unknown.accept]"},
    "small_body_limit": {"max-size": "[limits.announced]"},
}


#: mutation -> timeout multiplier: a client that hangs (a lost partial frame
#: it waits for forever) fails its scenario only when the wait runs out; a
#: fifth of it (6 s) gives the same fault.
MULTIPLIER = {"fragile_reader": 0.2}


def _key_file(tmp_path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from launch import write_key_file

    return write_key_file(tmp_path)


def test_every_mutation_has_scenarios() -> None:
    assert set(CAUGHT_BY) == set(MUTATIONS)
    ids = {scenario.id for scenario in CLIENT_SCENARIOS}
    assert set().union(*CAUGHT_BY.values()) <= ids


def test_our_client_passes_every_scenario(tmp_path: Path) -> None:
    key_file = _key_file(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rexec.conformance",
            "--key-file",
            str(key_file),
            "--client",
            f"{sys.executable} {ADAPTER}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(CLIENT_SCENARIOS)} client scenarios: {len(CLIENT_SCENARIOS)} pass" in done.stdout


@pytest.mark.parametrize("mutation", sorted(CAUGHT_BY))
def test_broken_client_is_caught(mutation: str, tmp_path: Path) -> None:
    key_file = _key_file(tmp_path)
    expected = CAUGHT_BY[mutation]
    results = asyncio.run(
        check_client(
            f"{sys.executable} {ADAPTER} --mutation {mutation}",
            load_key(key_file),
            key_file,
            multiplier=MULTIPLIER.get(mutation, 1.0),
            only=frozenset(expected),
        )
    )
    assert {r.scenario.id for r in results} == set(expected)
    for result in results:
        assert not result.passed, f"{mutation} passed {result.scenario.id}"
        assert any(expected[result.scenario.id] in fault for fault in result.faults), result.faults
