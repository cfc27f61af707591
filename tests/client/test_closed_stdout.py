"""Output into a closed pipe (``rexec ... | head``) ends every subcommand
quietly, as a program killed by SIGPIPE ends: status 141, nothing on stderr,
never a BrokenPipeError traceback.

The pipe's reading end is closed before the program starts, so that its
first write fails, whatever it writes and however the writes are buffered.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from client_helpers import CLI_TIMEOUT, cli_argv

EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def run_into_closed_pipe(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            cli_argv(*args), input=stdin, stdout=writer, stderr=subprocess.PIPE,
            timeout=CLI_TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        os.close(writer)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big"
    path.write_bytes(os.urandom(1 << 20))
    return path


#: Subcommands, and the status each ends with (None: any, as long as it is quiet).
CASES = {
    "run": 141,
    "run, the remote shell": 141,
    "get to stdout": 141,
    "batch": 141,
    # The batch engineer's choice: a dry run ends 0 with what it could print.
    "batch --dry-run": 0,
    # As sh reading a script: the line's command is ended and the shell
    # carries on to the next line; it ends with the last line's status.
    "shell": None,
    "keygen": 141,
}


def _argv(case: str, server: Any, big_file: Path, tmp_path: Path) -> tuple[list[str], bytes]:
    key = ["--key-file", str(server.key_file)]
    return {
        "run": (["run", *key, server.address, "seq", "1", "200000"], b""),
        "run, the remote shell": (["run", *key, server.address, "yes | head -c 1000000"], b""),
        "get to stdout": (["get", *key, server.address, str(big_file), "-"], b""),
        "batch": (
            ["batch", *key, "-q", "-H", server.address, "--onall", "--", "seq", "1", "200000"],
            b"",
        ),
        "batch --dry-run": (
            ["batch", "--dry-run", "-H", "h[1-3000]", "--onall", "--", "true"],
            b"",
        ),
        "shell": (["shell", *key, server.address], b"seq 1 200000\necho next\n"),
        "keygen": (["keygen", "--key-file", str(tmp_path / "new-key")], b""),
    }[case]


@pytest.mark.parametrize("case", CASES)
def test_a_closed_stdout_ends_a_subcommand_quietly(
    case: str, server: Any, big_file: Path, tmp_path: Path
) -> None:
    args, stdin = _argv(case, server, big_file, tmp_path)
    result = run_into_closed_pipe(*args, stdin=stdin)
    assert result.stderr.decode() == ""
    if CASES[case] is not None:
        assert result.returncode == CASES[case]


def test_a_closed_stdout_ends_discover_quietly(start_server: Callable[..., Any]) -> None:
    port = _free_udp_port()
    start_server("--announce", "--announce-port", str(port))
    result = run_into_closed_pipe("discover", "--address", "127.0.0.1", "--port", str(port))
    assert (result.returncode, result.stderr.decode()) == (EXIT_BROKEN_PIPE, "")


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"]]
    + [[name, "--help"] for name in ("run", "shell", "put", "get", "batch", "discover", "keygen")],
)
def test_help_into_a_closed_pipe_is_quiet(args: list[str]) -> None:
    # argparse drops help it cannot write and exits 0; either way, no noise.
    result = run_into_closed_pipe(*args)
    assert result.returncode in (0, EXIT_BROKEN_PIPE) and result.stderr == b""


def run_with_closed_fds(
    *args: str, closed: tuple[int, ...], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with descriptors ``closed`` closed at its start (the
    shell's ``>&-``), the others captured."""

    def close_them() -> None:
        for fd in closed:
            os.close(fd)

    return subprocess.run(
        cli_argv(*args), input=stdin, capture_output=True, timeout=CLI_TIMEOUT, check=False,
        preexec_fn=close_them,
    )  # fmt: skip


@pytest.mark.parametrize("case", [*CASES, "put"])
def test_a_stdout_closed_before_the_start_is_one_line_and_255(
    case: str, server: Any, big_file: Path, tmp_path: Path
) -> None:
    """``rexec ... >&-``: nothing is run, one line says why, never a traceback."""
    marker = tmp_path / "ran"
    if case == "put":
        args, stdin = ["put", "--key-file", str(server.key_file), server.address,
                       str(big_file), str(marker)], b""  # fmt: skip
    else:
        args, stdin = _argv(case, server, big_file, tmp_path)
    result = run_with_closed_fds(*args, closed=(1,), stdin=stdin)
    assert result.returncode == 255
    assert result.stderr.decode().startswith("rexec: standard output is closed")
    assert result.stderr.count(b"\n") == 1
    assert not marker.exists() and not (tmp_path / "new-key").exists()


def test_closed_stdin_and_stderr_are_empty_and_discarded(server: Any) -> None:
    """As ssh: a closed stdin reads as empty, a closed stderr discards; the
    command runs and its output and status come back."""
    key = ["--key-file", str(server.key_file)]
    script = "cat; echo out; echo err >&2; exit 3"
    result = run_with_closed_fds("run", *key, server.address, script, closed=(0, 2))
    assert (result.returncode, result.stdout) == (3, b"out\n")
