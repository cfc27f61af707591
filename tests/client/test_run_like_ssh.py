"""``rexec run`` with the habits of ssh: ``rexec run HOST CMD ARG...`` without
``--``, one word through the remote shell, everything after the host the
command's, stdin
forwarded by default (a terminal too), and hints when the form of a command
was the problem. The real CLI against a real rexecd."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest
from client_helpers import CLI_TIMEOUT, cli_argv, write_key

Run = Callable[..., subprocess.CompletedProcess[bytes]]

#: Bound on every wait for the program on a terminal.
TERMINAL_TIMEOUT = 20


def test_the_words_after_the_host_are_the_command(rexec_run: Run) -> None:
    result = rexec_run("uname", "-a")
    local = subprocess.run(["uname", "-a"], capture_output=True, check=True).stdout
    assert (result.returncode, result.stdout, result.stderr) == (0, local, b"")


def test_options_after_the_command_are_the_commands(rexec_run: Run) -> None:
    # -n, -t, -e and --timeout are rexec's options too; after the command's
    # first word they are the command's.
    result = rexec_run("printf", "%s|", "-l", "-n", "-t", "-e", "X=1", "--timeout", "5")
    assert (result.returncode, result.stdout) == (0, b"-l|-n|-t|-e|X=1|--timeout|5|")


def test_rexec_options_before_the_host_are_rexecs(rexec_run: Run) -> None:
    result = rexec_run(
        "sh",
        "-c",
        'echo "$LC_GREETING"; sleep 30',
        options=["-e", "LC_GREETING=hi", "--timeout", "0.5"],
    )
    assert (result.returncode, result.stdout) == (124, b"hi\n")


@pytest.mark.parametrize("command", [["-la"], ["--bogus", "true"], ["--timeout", "5", "true"]])
def test_every_word_after_the_host_is_the_command(rexec_run: Run, command: list[str]) -> None:
    """Never "unrecognized arguments": after HOST, rexec reads nothing; a
    command that looks like rexec's options is run, and when no program has
    that name, a hint says where rexec's options go."""
    result = rexec_run("--", *command)
    assert result.returncode == 127
    [line] = result.stderr.decode().splitlines()
    assert "spawn.not_found" in line and "options go before HOST" in line
    assert "unrecognized" not in line
    # In the shell form too (one word): sh reads it, rexec does not.
    assert rexec_run(*command).stderr.count(b"unrecognized") == 0


def test_one_word_is_a_command_line_for_the_remote_shell(rexec_run: Run) -> None:
    result = rexec_run("printf 'a\\nb\\nc\\n' | wc -l; exit 3")
    assert (result.returncode, result.stdout.strip()) == (3, b"3")


def test_several_words_are_an_argv_without_a_shell(rexec_run: Run) -> None:
    result = rexec_run("printf", "%s|", "$HOME", "a  b", "*", ";")
    assert (result.returncode, result.stdout) == (0, b"$HOME|a  b|*|;|")


def test_dashes_still_force_an_argv(rexec_run: Run) -> None:
    # Even one word: a program name with a space in it, not a shell line.
    result = rexec_run("--", "echo hi")
    assert result.returncode == 127 and result.stdout == b""


def _shell(line: str, key_file: Path | None) -> subprocess.CompletedProcess[bytes]:
    """``line`` typed into a shell where ``rexec`` is this test's client (and
    ``key_file`` the default key file, if given)."""
    env = dict(os.environ)
    env.pop("REXEC_KEY_FILE", None)
    if key_file is not None:
        env["REXEC_KEY_FILE"] = str(key_file)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["/bin/sh", "-c", line], env=env, capture_output=True, timeout=CLI_TIMEOUT, check=False
    )


def test_a_shell_line_after_dashes_gets_a_hint_that_works(rexec_run: Run, server: Any) -> None:
    result = rexec_run("--", "echo one | tr a-z A-Z")
    assert result.returncode == 127
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "no such program" in lines[0], lines
    assert lines[0].endswith(f"{server.address} 'echo one | tr a-z A-Z'"), lines
    assert "without '--'" in lines[0], lines
    suggested = lines[0][lines[0].index("rexec run ") :]  # with the options as typed
    followed = _shell(suggested, server.key_file)
    assert (followed.returncode, followed.stdout) == (0, b"ONE\n")


@pytest.fixture
def argv_only_server(tmp_path: Path, configured_servers: Callable[..., Any]) -> tuple[str, Path]:
    """A rexecd whose one key may run ``uptime`` as an argv, and no shell
    strings: its address and that key's file."""
    rules = 'allow_argv = ["uptime"]\nallow_shell = false\n'
    return _server_with_one_key(configured_servers, tmp_path, rules)


@pytest.fixture
def rooted_server(tmp_path: Path, configured_servers: Callable[..., Any]) -> tuple[str, Path]:
    """A rexecd whose one key may run commands only under tmp_path/root
    (not the account's home): its address and that key's file."""
    (tmp_path / "root").mkdir()
    rules = f'cwd_roots = ["{tmp_path / "root"}"]\n'
    return _server_with_one_key(configured_servers, tmp_path, rules)


def _server_with_one_key(
    configured_servers: Callable[..., Any], tmp_path: Path, rules: str
) -> tuple[str, Path]:
    key_file = write_key(tmp_path / "ci.key")
    config = tmp_path / "rexecd.toml"
    config.write_text(f'[[keys]]\nname = "ci"\nfile = "{key_file}"\n{rules}')
    process = configured_servers(tmp_path, config, "--host", "127.0.0.1")
    port = re.search(r"rexecd listening on \S+:(\d+)", process.startup_output)[1]
    return f"127.0.0.1:{port}", key_file


def test_a_key_without_shell_strings_gets_a_hint_that_works(
    argv_only_server: tuple[str, Path],
) -> None:
    address, key_file = argv_only_server
    result = _shell(f"rexec run {address} uptime", key_file)
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    suggested = f"rexec run {address} -- uptime"
    assert len(lines) == 1 and lines[0].endswith(suggested), lines
    followed = _shell(suggested, key_file)
    assert followed.returncode == 0 and b"load average" in followed.stdout


def test_no_command_says_what_to_give(server: Any) -> None:
    result = _shell(f"rexec run {server.address}", server.key_file)
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "rexec run HOST COMMAND" in lines[0] and "rexec shell" in lines[0]


def test_help_says_how_the_command_line_is_read() -> None:
    result = subprocess.run(
        cli_argv("run", "--help"), capture_output=True, timeout=CLI_TIMEOUT, check=False
    )
    text = result.stdout.decode()
    assert result.returncode == 0
    for phrase in ("several words", "one word", "/bin/sh", "passes -l to ls", "-n", "Ctrl-D"):
        assert phrase in text, phrase


def _on_terminal(server: Any, *args: str, options: tuple[str, ...] = ()) -> pexpect.spawn:
    argv = cli_argv("run", "--key-file", str(server.key_file), *options, server.address, *args)
    return pexpect.spawn(argv[0], argv[1:], timeout=TERMINAL_TIMEOUT)


def test_a_remote_prompt_reads_what_is_typed_on_the_terminal(server: Any) -> None:
    child = _on_terminal(server, 'printf "name? "; read name; echo "hello $name"')
    try:
        child.expect_exact("name? ")
        child.sendline("bob")
        child.expect_exact("hello bob")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_ctrl_d_on_the_terminal_ends_the_remote_stdin(server: Any) -> None:
    child = _on_terminal(server, "wc", "-l")
    try:
        child.sendline("one")
        child.sendline("two")
        child.sendeof()
        child.expect(r"\b2\b")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_a_command_that_reads_nothing_ends_without_waiting_for_typing(server: Any) -> None:
    child = _on_terminal(server, "echo", "done")
    try:
        child.expect_exact("done")
        child.expect(pexpect.EOF)  # nothing typed: the end of the command ends rexec
    finally:
        child.close()
    assert child.exitstatus == 0


def test_no_stdin_flag_gives_eof_at_once_even_on_a_terminal(server: Any) -> None:
    started = time.monotonic()
    child = _on_terminal(server, "cat; echo after-eof", options=("-n",))
    try:
        child.expect_exact("after-eof")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0 and time.monotonic() - started < TERMINAL_TIMEOUT


def test_a_hint_keeps_the_options_typed_before_host(argv_only_server: tuple[str, Path]) -> None:
    """Outsider finding F9: the hint dropped --key-file, so pasting it failed."""
    address, key_file = argv_only_server
    result = _shell(f"rexec run --key-file {key_file} {address} uptime", None)
    lines = result.stderr.decode().splitlines()
    suggested = f"rexec run --key-file {key_file} {address} -- uptime"
    assert len(lines) == 1 and lines[0].endswith(suggested), lines
    followed = _shell(suggested, None)
    assert followed.returncode == 0 and b"load average" in followed.stdout


def test_a_key_held_to_its_directories_is_told_of_cwd(
    rooted_server: tuple[str, Path], tmp_path: Path
) -> None:
    """Outsider finding F8: a refusal for the directory suggested running the
    command as a program, which is refused the same way."""
    address, key_file = rooted_server
    result = _shell(f"rexec run {address} pwd", key_file)
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "outside the allowed roots" in lines[0], lines
    assert "--cwd DIR" in lines[0] and "without a shell" not in lines[0], lines
    followed = _shell(f"rexec run --cwd {tmp_path / 'root'} {address} pwd", key_file)
    assert followed.stdout.decode().strip() == str(tmp_path / "root")


def test_t_with_piped_stdin_gets_no_pty_unless_given_twice(server: Any) -> None:
    """Outsider finding F11: ``echo x | rexec run -t HOST cat`` printed x twice
    (the pty's echo, then cat's). As ssh: no pty, a note; ``-tt`` forces one."""
    once = _shell(f"echo piped | rexec run -t {server.address} cat", server.key_file)
    assert (once.returncode, once.stdout) == (0, b"piped\n")
    assert b"stdin is not a terminal" in once.stderr
    twice = _shell(f"echo piped | rexec run -tt {server.address} cat", server.key_file)
    assert twice.returncode == 0 and b"stdin is not a terminal" not in twice.stderr
    assert twice.stdout.count(b"piped") == 2  # on a pty, as asked: its echo and cat's
