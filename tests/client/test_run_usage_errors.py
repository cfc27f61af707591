"""``rexec run`` input the protocol cannot carry is a usage error: one line in
words (never pydantic's text), status 255, nothing run. The real CLI."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from client_helpers import CLI_TIMEOUT, cli_argv

Run = Callable[..., subprocess.CompletedProcess[bytes]]


def one_usage_line(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 255 and result.stdout == b""
    [line] = result.stderr.decode(errors="replace").splitlines()
    assert line.startswith("rexec: ") and line.endswith("(see 'rexec run --help')")
    for pydantic_words in ("Value error", "validation", "at least 1 item", "serializ", "surrogate"):
        assert pydantic_words not in line
    return line


def test_an_empty_program_name_is_a_usage_error(rexec_run: Run, tmp_path: Path) -> None:
    line = one_usage_line(rexec_run("--", "", str(tmp_path / "never")))
    assert "program name" in line and "empty" in line


def test_an_empty_working_directory_is_a_usage_error(rexec_run: Run) -> None:
    line = one_usage_line(rexec_run("true", options=["--cwd", ""]))
    assert "--cwd" in line


@pytest.mark.parametrize(
    ("where", "args", "options"),
    [
        ("the command", [b"echo \xff"], []),
        ("the command", [b"echo", b"caf\xe9"], []),
        ("--cwd", [b"true"], [b"/tmp/\xff"]),
        ("-e", [b"true"], [b"A=\xff"]),
    ],
)
def test_words_that_are_not_utf8_are_named(
    rexec_run: Run, where: str, args: list[bytes], options: list[bytes]
) -> None:
    def text(word: bytes) -> str:
        return word.decode(errors="surrogateescape")  # as Python reads argv

    flag = {"--cwd": ["--cwd"], "-e": ["-e"]}.get(where, [])
    result = rexec_run(*map(text, args), options=[*flag, *map(text, options)])
    line = one_usage_line(result)
    assert line.startswith(f"rexec: {where}: ") and "not UTF-8" in line and "\\x" in line


@pytest.mark.parametrize("subcommand", ["put", "get", "batch", "shell", "discover", "keygen"])
def test_an_unknown_option_points_at_the_subcommands_help(subcommand: str) -> None:
    result = subprocess.run(
        cli_argv(subcommand, "--bogus-option", "host", "a", "b"),
        capture_output=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 255
    [line] = result.stderr.decode().splitlines()
    assert "--bogus-option" in line and line.endswith(f"(see 'rexec {subcommand} --help')")


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["run", "root@127.0.0.1", "id"], "rexec has no USER@"),
        (["run", "-p", "7464", "127.0.0.1", "id"], "-p: the port goes with the host: HOST:PORT"),
        (
            ["put", "f", "127.0.0.1:/tmp/x"],
            "it is 'rexec put HOST LOCAL REMOTE', not scp's HOST:PATH",
        ),
        (["get", "127.0.0.1:/etc/hostname", "."], "it is 'rexec get HOST REMOTE LOCAL'"),
    ],
    ids=["user-at", "dash-p", "scp-put", "scp-get"],
)
def test_ssh_and_scp_habits_get_a_hint(argv: list[str], hint: str) -> None:
    """Outsider finding F12: one line, exit 255, and what rexec has instead."""
    result = subprocess.run(
        cli_argv(*argv), capture_output=True, timeout=CLI_TIMEOUT, check=False
    )  # fmt: skip
    assert result.returncode == 255
    [line] = result.stderr.decode().splitlines()
    assert hint in line, line


@pytest.mark.parametrize(
    ("options", "code"),
    [(["--cwd", "/nonexistent-dir"], "cwd.invalid"), (["-e", "LD_PRELOAD=x"], "env.forbidden")],
)
def test_a_command_the_server_refused_is_255_naming_the_code(
    rexec_run: Run, server: Any, options: list[str], code: str
) -> None:
    """README's exit table: a refusal is rexec's own failure (255), not a
    status the command could have returned."""
    result = rexec_run("true", options=options)
    assert result.returncode == 255
    [line] = result.stderr.decode().splitlines()
    assert line.startswith(f"rexec: {server.address}: ") and line.endswith(f"({code})")


def test_the_library_says_it_in_words_too(server: Any) -> None:
    import rexec_client

    for args, options in (([""], {}), (["true"], {"cwd": ""})):
        with pytest.raises(ValueError) as raised:
            rexec_client.run(args, host=server.address, key_file=server.key_file, **options)
        text = str(raised.value)
        assert "must not be empty" in text and "Value error" not in text, text
        assert "at least 1 item" not in text
