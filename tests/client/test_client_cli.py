"""The ``rexec run`` program, run as a user would, against a real rexecd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from client_helpers import CLI_TIMEOUT, cli_argv, write_key
from launch import has_ipv6_loopback

Run = Callable[..., subprocess.CompletedProcess[bytes]]


def assert_one_error_line(result: subprocess.CompletedProcess[bytes], *words: str) -> None:
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rexec: "), result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["sh", "-c", "kill -KILL $$"], 128 + 9),
        (["sh", "-c", "kill -TERM $$"], 128 + 15),
        (["no-such-program-xyz"], 127),
    ],
)
def test_exit_status_follows_the_remote_command(
    rexec_run: Run, command: list[str], status: int
) -> None:
    assert rexec_run("--", *command).returncode == status


def test_timeout_exits_124(rexec_run: Run) -> None:
    started = time.monotonic()
    assert rexec_run("--", "sleep", "30", options=["--timeout", "0.5"]).returncode == 124
    assert time.monotonic() - started < 15


def test_output_streams_stay_apart(rexec_run: Run) -> None:
    result = rexec_run(options=["--shell", "echo to-out; echo to-err >&2"])
    assert (result.stdout, result.stderr) == (b"to-out\n", b"to-err\n")


def test_piped_stdin_is_forwarded_with_its_eof(rexec_run: Run) -> None:
    data = bytes(range(256)) * 1000
    result = rexec_run("--", "cat", input=data)
    assert result.returncode == 0 and result.stdout == data
    assert rexec_run("--", "tr", "a-z", "A-Z", input=b"hello\n").stdout == b"HELLO\n"


def test_no_stdin_flag_sends_nothing(rexec_run: Run) -> None:
    assert rexec_run("--", "cat", input=b"ignored", options=["-n"]).stdout == b""


def test_arguments_after_dashes_reach_the_command_verbatim(rexec_run: Run) -> None:
    result = rexec_run("--", "printf", "%s|", "--", "-n", "a b", "$HOME")
    assert result.stdout == b"--|-n|a b|$HOME|"


def test_env_and_cwd(rexec_run: Run, tmp_path: Path) -> None:
    # LC_* names: what a server accepts from a client by default.
    options = ["--cwd", str(tmp_path), "-e", "LC_A=1", "--env", "LC_B=two"]
    result = rexec_run(options=[*options, "--shell", 'echo "$LC_A $LC_B"; pwd'])
    assert result.stdout == f"1 two\n{tmp_path}\n".encode()


def test_ctrl_c_interrupts_the_remote_command(server: Any) -> None:
    argv = cli_argv("run", "--key-file", str(server.key_file), server.address, "--", "sleep", "30")
    cli = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        remote = _wait_for_remote_sleep(server.process.pid)
        cli.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert cli.wait(timeout=10) == 130
        assert time.monotonic() - started < 5
        assert not remote.is_running() or remote.status() == psutil.STATUS_ZOMBIE
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stdout.close()  # type: ignore[union-attr]
        cli.stderr.close()  # type: ignore[union-attr]


def _wait_for_remote_sleep(server_pid: int) -> psutil.Process:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for child in psutil.Process(server_pid).children(recursive=True):
            try:
                if child.name() == "sleep":
                    return child
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.05)
    pytest.fail("the remote sleep never started")


def test_closed_local_stdout_ends_quietly(server: Any) -> None:
    argv = cli_argv(
        "run", "--key-file", str(server.key_file), server.address, "--", "seq", "1", "10000000"
    )
    cli = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert cli.stdout is not None and cli.stderr is not None
    assert cli.stdout.readline() == b"1\n"
    cli.stdout.close()  # as `| head -1` does
    try:
        assert cli.wait(timeout=CLI_TIMEOUT) == 128 + signal.SIGPIPE
        assert cli.stderr.read() == b""
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stderr.close()


def test_refused_connection_is_one_line_and_255(server: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = cli_argv("run", "--key-file", str(server.key_file), f"127.0.0.1:{port}", "--", "true")
    result = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False)
    assert_one_error_line(result, "cannot connect", "refused")


def test_wrong_key_is_one_line_and_255(server: Any, tmp_path: Path) -> None:
    other = write_key(tmp_path / "other-key")
    argv = cli_argv("run", "--key-file", str(other), server.address, "--", "true")
    result = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False)
    assert_one_error_line(result, "refused the key")


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "[::1", "host:port"])
def test_bad_address_is_one_line_and_255(rexec_run: Run, address: str) -> None:
    result = rexec_run("--", "true", address=address)
    assert_one_error_line(result, "bad address")


def test_missing_key_file_is_one_line_and_255(server: Any, tmp_path: Path) -> None:
    argv = cli_argv("run", "--key-file", str(tmp_path / "none"), server.address, "--", "true")
    result = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False)
    assert_one_error_line(result, "does not exist")


def test_missing_command_is_explained() -> None:
    argv = cli_argv("run", "127.0.0.1")
    result = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False)
    assert_one_error_line(result, "--")


def test_help_explains_usage_and_exit_statuses() -> None:
    result = subprocess.run(
        cli_argv("run", "--help"), capture_output=True, timeout=CLI_TIMEOUT, check=False
    )
    assert result.returncode == 0
    for text in (b"HOST[:PORT]", b"--shell", b"124", b"255", b"Ctrl-C"):
        assert text in result.stdout


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_loopback_address(start_server: Any) -> None:
    server = start_server(host="::1")
    argv = cli_argv(
        "run", "--key-file", str(server.key_file), f"[::1]:{server.port}", "--", "echo", "v6"
    )
    result = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False)
    assert (result.returncode, result.stdout) == (0, b"v6\n")


def test_console_script_is_installed() -> None:
    import shutil

    rexec = shutil.which("rexec")
    if rexec is None:
        pytest.skip("the rexec console script is not on PATH")
    result = subprocess.run(
        [rexec, "--help"], capture_output=True, timeout=CLI_TIMEOUT, check=False
    )
    assert result.returncode == 0 and b"run" in result.stdout
    assert os.path.basename(rexec) == "rexec"
