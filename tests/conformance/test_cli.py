"""The command line: selection, exit statuses, reports, colour."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from rexec.conformance.report import Console

from .conftest import FakeServer


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rexec.conformance", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def key_file(server: FakeServer, tmp_path: Path) -> str:
    return str(next(tmp_path.glob("fake*/key")))


def test_list_and_selection() -> None:
    result = cli("--list", "--cases", "frame.length.*", "--exclude", "*/pre-auth")
    assert result.returncode == 0
    ids = [line.split()[0] for line in result.stdout.splitlines()]
    assert "frame.length.negative/ffffffff" in ids and "frame.length.limit/equal" in ids
    assert not [i for i in ids if not i.startswith("frame.length.") or i.endswith("/pre-auth")]


def test_list_describes_every_case_from_its_docstring() -> None:
    """Each line is id, level and description; a computed size is filled in."""
    result = cli("--list")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split(None, 2)[2] for line in result.stdout.splitlines()}
    assert lines["command.id.increasing/lower"] == (
        "A run with id 3 after a run with id 10: fatal command.bad_id."
    )
    assert lines["transfer.cancel/get"].startswith("get a 32 MiB file without reading")


def test_list_describes_cases_under_optimize() -> None:
    """python -OO drops docstrings: the descriptions are read from the source."""
    result = subprocess.run(
        [sys.executable, "-OO", "-m", "rexec.conformance", "--list", "--cases", "exit.counts"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(None, 2)[2].strip() == (
        "printf 12345 to stdout, 123 to stderr, 6 bytes of stdin: the exit counts 5, 3 and 6."
    )


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--timeout-multiplier", "0", "127.0.0.1:1"),
        ("--no-such-flag",),
        ("--cases", "no.such.case", "127.0.0.1:1"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("00" * 32)
    key.chmod(0o600)
    result = cli("--key-file", str(key), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_connection_refused_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
    key = tmp_path / "key"
    key.write_text("00" * 32)
    key.chmod(0o600)
    result = cli("--key-file", str(key), f"127.0.0.1:{port}")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot" in result.stderr


def test_reports_and_exit_status_on_a_must_failure(
    fake_server: Callable[..., FakeServer], tmp_path: Path
) -> None:
    server = fake_server(["no_pong"])
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    result = cli(
        "--key-file",
        key_file(server, tmp_path),
        f"{server.host}:{server.port}",
        "--cases",
        "message.ping.answer/idle,auth.mac.verify/right-key",
        "--json",
        str(report),
        "--junit",
        str(junit),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "\033[" not in result.stdout  # not a terminal: no colour
    assert "fail" in result.stdout and "2 cases" in result.stdout
    data = json.loads(report.read_text())
    cases = {c["id"]: c for c in data["cases"]}
    failed = cases["message.ping.answer/idle"]
    assert failed["verdict"] == "fail" and failed["expected"] == ["pong"]
    assert failed["observed"] == "no-pong" and failed["level"] == "MUST"
    assert "MUST answer pong" in failed["quote"]
    entries = failed["wire"]["entries"]
    assert any(e.get("frame", {}).get("type") == "ping" for e in entries)
    assert any("hex" in e and e["dir"] == "recv" for e in entries)
    assert cases["auth.mac.verify/right-key"]["verdict"] == "pass"
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert suite.find("testcase[@name='message.ping.answer/idle']/failure") is not None


def test_should_failure_fails_only_in_strict_mode(
    fake_server: Callable[..., FakeServer], tmp_path: Path
) -> None:
    server = fake_server(["no_abort"])
    args = (
        "--key-file",
        key_file(server, tmp_path),
        f"{server.host}:{server.port}",
        "--cases",
        "error.fatal.prompt",
        # The fake never closes: each run waits the case's whole close wait
        # (10 s) for the same verdict, never-closed; half of it is plenty.
        "--timeout-multiplier",
        "0.5",
    )
    relaxed = cli(*args)
    assert relaxed.returncode == 0 and "non-strict" in relaxed.stdout
    assert cli(*args, "--strict").returncode == 1


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Console(_Tty()).colour and not Console(io.StringIO()).colour
    monkeypatch.setenv("NO_COLOR", "1")
    assert not Console(_Tty()).colour
