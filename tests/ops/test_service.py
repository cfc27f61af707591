"""Running as a service: SIGHUP reloads keys and rules without touching
running commands, a broken reload keeps the old configuration, --check-config
names the line of a broken file, --log-format json, --version, and the
contrib/ files."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from forkserver import run_rexecd
from launch import write_key_file

from rexec import __version__
from tests.server.wire import Wire, connect, feed_stdin

from .conftest import parse_prometheus, sample

ROOT = Path(__file__).resolve().parents[2]


def key_file(directory: Path, name: str) -> Path:
    sub = directory / name
    sub.mkdir()
    return write_key_file(sub)


def keys_config(*entries: tuple[str, Path, str]) -> str:
    return '[server]\nhttp = "127.0.0.1:0"\n\n' + "".join(
        f'[[keys]]\nname = "{name}"\nfile = "{path}"\n{rules}\n' for name, path, rules in entries
    )


def scrape_process(process) -> dict:
    import http.client

    match = re.search(r"rexecd http on (\S+):(\d+)", process.startup_output)
    conn = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=5)
    try:
        conn.request("GET", "/metrics")
        return parse_prometheus(conn.getresponse().read().decode())
    finally:
        conn.close()


def wait_for_line(path: Path, line: str) -> str:
    """stderr once it holds ``line`` (a thread of rexecd's own writes it)."""
    deadline = time.monotonic() + 20
    while line not in (text := path.read_text()):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    return text


def reload_and_wait(process, result: str, count: int) -> None:
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while sample(scrape_process(process), "rexecd_config_reloads_total", result=result) < count:
        assert time.monotonic() < deadline, "reload not seen"
        time.sleep(0.05)


def reload_records(audit_log: Path, count: int) -> list[tuple[bool, list[str] | None]]:
    """(ok, keys) of each reload the audit log records, once it holds
    ``count`` of them or after 10 s: its own thread writes the record a moment
    after the reload is counted."""
    deadline = time.monotonic() + 10
    while True:
        events = [json.loads(line) for line in audit_log.read_text().splitlines()]
        reloads = [(e["ok"], e.get("keys")) for e in events if e["event"] == "reload"]
        if len(reloads) >= count or time.monotonic() > deadline:
            return reloads
        time.sleep(0.05)


def started_with_the_first_of_two_keys(
    tmp_path: Path, configured_servers
) -> tuple[subprocess.Popen[bytes], Path, Path, Path, int]:
    """A rexecd whose config names key ``first`` (``second`` is made but not
    named yet, for a reload to add): the process, its config, both key
    files and its port."""
    first, second = key_file(tmp_path, "k1"), key_file(tmp_path, "k2")
    config = tmp_path / "rexecd.toml"
    config.write_text(keys_config(("first", first, "")))
    process = configured_servers(tmp_path, config)
    port = int(re.search(r"rexecd listening on \S+:(\d+)", process.startup_output).group(1))
    return process, config, first, second, port


def test_sighup_reload_adds_a_key_without_disturbing_a_running_command(
    tmp_path: Path, configured_servers
) -> None:
    process, config, first, second, port = started_with_the_first_of_two_keys(
        tmp_path, configured_servers
    )
    as_first = SimpleNamespace(host="127.0.0.1", port=port, key=bytes.fromhex(first.read_text()))
    as_second = SimpleNamespace(host="127.0.0.1", port=port, key=bytes.fromhex(second.read_text()))

    def auth_fails(who) -> None:
        with Wire.open(who.host, who.port) as wire:
            wire.authenticate(key=who.key, expect_ok=False)
            wire.expect_error_then_eof("auth.failed")

    auth_fails(as_second)
    running = connect(as_first)
    command = running.run(["sh", "-c", "read line; echo got $line"], stdin=True)
    running.wait_for(lambda: running.results[command].started is not None)

    # Reload: a second key, restricted to echo.
    config.write_text(
        keys_config(("first", first, ""), ("second", second, 'allow_argv = ["echo"]'))
    )
    reload_and_wait(process, "ok", 1)
    with connect(as_second) as wire:
        assert wire.wait(wire.run(["echo", "new key"])).stdout == b"new key\n"
        assert wire.wait(wire.run(["id"])).error.code == "command.denied"

    # The command started before the reload goes on and finishes normally.
    feed_stdin(running, command, b"hello\n")
    result = running.wait(command)
    assert result.exit.exit_code == 0 and bytes(result.stdout) == b"got hello\n"

    # Remove the first key: new connections with it fail; the one already
    # authenticated keeps its rules and still runs commands.
    config.write_text(keys_config(("second", second, 'allow_argv = ["echo"]')))
    reload_and_wait(process, "ok", 2)
    auth_fails(as_first)
    assert running.wait(running.run(["sh", "-c", "echo still here"])).stdout == b"still here\n"
    running.close()

    # A broken file on reload: logged with its line, the running config kept.
    config.write_text(keys_config(("second", second, "")) + "[[keys]\n")
    reload_and_wait(process, "failed", 1)
    with connect(as_second) as wire:
        assert wire.wait(wire.run(["echo", "kept"])).stdout == b"kept\n"
    stderr = (tmp_path / "rexecd.stderr").read_text()
    assert re.search(r"reload failed, keeping the running configuration: .*line \d+", stderr), (
        stderr
    )
    reloads = reload_records(tmp_path / "audit.jsonl", 3)
    assert reloads == [(True, ["first", "second"]), (True, ["second"]), (False, None)]
    assert process.poll() is None


def test_sighup_reload_warns_about_settings_that_need_a_restart(
    tmp_path: Path, configured_servers
) -> None:
    first = key_file(tmp_path, "k1")
    config = tmp_path / "rexecd.toml"
    config.write_text(keys_config(("first", first, "")))
    process = configured_servers(tmp_path, config)
    config.write_text(
        keys_config(("first", first, "")).replace("[server]\n", "[server]\nannounce = true\n")
    )
    reload_and_wait(process, "ok", 1)
    # rexecd's reload says it on stderr after the reload is counted: wait for it.
    wait_for_line(
        tmp_path / "rexecd.stderr", "announce changed false -> true: needs a restart, not applied"
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[server]\nhttp = "127.0.0.1:9100"\n\n[commands\nrun_as = "x"\n', "line 4"),
        ('[server]\nannounce = "yes"\n', "announce must be true or false"),
        ('[server]\nannounce_networks = ["10.0.0.0/33"]\n', "announce_networks"),
        ('[server]\nlog_format = "xml"\n', "log_format must be text or json"),
    ],
)
def test_check_config_catches_a_broken_file(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "rexecd.toml"
    config.write_text(text)
    result = run_rexecd(
        "--config", str(config), "--key-file", str(write_key_file(tmp_path)), "--check-config"
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and needle in result.stderr, result.stderr


def test_log_format_json(tmp_path: Path) -> None:
    key = write_key_file(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_rexecd(
            "--key-file", str(key), "--port", str(taken.getsockname()[1]), "--log-format", "json",
            "--state-dir", str(tmp_path / "state"), "--audit-log", str(tmp_path / "audit"),
        )  # fmt: skip
    assert result.returncode == 1
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["level"] == "error" and record["message"].startswith("cannot listen on")
    assert set(record) == {"time", "level", "message"}


def test_log_format_json_when_serving(start_server) -> None:
    server = start_server("--log-format", "json")
    server.stop()
    stderr = (server.key_file.parent / "rexecd.stderr").read_text()
    records = [json.loads(line) for line in stderr.splitlines()]
    assert any(re.match(r"connect with: \S*rexec run ", record["message"]) for record in records)


def test_version() -> None:
    result = run_rexecd("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"rexecd {__version__}"


def test_contrib_files(tmp_path: Path) -> None:
    unit = (ROOT / "contrib" / "rexecd.service").read_text()
    for needle in (
        "KillMode=control-group",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=rexecd",
        "LogsDirectory=rexecd",
        "PrivateTmp=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "--check-config\nExecStart=",
    ):
        assert needle in unit, needle
    example = tomllib.loads((ROOT / "contrib" / "rexecd.toml").read_text())
    assert example["server"]["log_format"] in ("text", "json")
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(ROOT / "contrib" / "rexecd.service")],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Unknown key" not in verify.stderr and "Unknown section" not in verify.stderr, (
            verify.stderr
        )
