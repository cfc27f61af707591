"""A server (or a man in the middle) that announces limits the client can't
work within (the second attacker's finding 5): every subcommand ends with
one ``rexec:`` line and status 255 (``batch``: its per-server report and
status 3), never a traceback.

The fake server is the project's protocol core in server role, announcing
what it is told to in ``hello``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import forkserver
import pytest
from client_helpers import CLI_TIMEOUT, cli_argv, fake_server, write_key

from rexec.protocol import Error, ServerLimits

#: What every subcommand is asked to do (the address is added).
SUBCOMMANDS = {
    "run": lambda address, tmp: ["run", address, "echo", "hi"],
    "shell": lambda address, tmp: ["shell", address],
    "batch": lambda address, tmp: ["batch", "--onall", "-w", address, "--", "echo", "hi"],
    "put": lambda address, tmp: ["put", address, str(tmp / "local.txt"), "/tmp/x"],
    "get": lambda address, tmp: ["get", address, "/etc/hostname", str(tmp / "got")],
}


def limits(max_header: int, max_body: int) -> ServerLimits:
    return ServerLimits(
        max_header=max_header, max_body=max_body, stdin_window=65536, max_commands=8
    )


async def _cli(key_file: Path, argv: list[str]) -> tuple[int, str]:
    # Forked (forkserver.CLI_FORK_SERVER) in a thread: the fake server runs
    # on this thread's event loop meanwhile.
    done = await asyncio.to_thread(
        forkserver.run,
        cli_argv(argv[0], "--key-file", str(key_file), *argv[1:]),
        input=b"",
        timeout=CLI_TIMEOUT,
        server=forkserver.CLI_FORK_SERVER,
    )
    return done.returncode, done.stderr.decode(errors="replace")


def one_line_255(status: int, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert status == 255 and len(lines) == 1 and lines[0].startswith("rexec"), (status, stderr)
    return lines[0]


@pytest.mark.parametrize("subcommand", sorted(SUBCOMMANDS))
@pytest.mark.parametrize(("max_header", "max_body"), [(65536, 1), (1, 1048576), (64, 31)])
def test_limits_that_cannot_carry_the_handshake(
    subcommand: str, max_header: int, max_body: int, tmp_path: Path
) -> None:
    key_file = write_key(tmp_path / "key")
    (tmp_path / "local.txt").write_text("data\n")
    key = bytes.fromhex(key_file.read_text().strip())

    async def go() -> tuple[int, str]:
        async with fake_server(key, limits=limits(max_header, max_body)) as port:
            argv = SUBCOMMANDS[subcommand](f"127.0.0.1:{port}", tmp_path)
            return await _cli(key_file, argv)

    status, stderr = asyncio.run(go())
    if subcommand == "batch":
        # batch reports per server, with its documented status for a server
        # that broke the protocol (3), and goes on with the others.
        assert status == 3 and "Traceback" not in stderr, (status, stderr)
        assert "127.0.0.1: announced limits too small to authenticate" in stderr
    else:
        assert "too small to authenticate" in one_line_255(status, stderr)


def test_a_message_above_the_announced_header_limit(tmp_path: Path) -> None:
    """After a good handshake, a run whose header the server said it won't
    take: refused by the client in one line, nothing sent."""
    key_file = write_key(tmp_path / "key")
    key = bytes.fromhex(key_file.read_text().strip())
    received: list[bytes] = []

    async def go() -> tuple[int, str]:
        async with fake_server(key, limits=limits(400, 1048576), received=received) as port:
            return await _cli(key_file, ["run", f"127.0.0.1:{port}", "echo", "x" * 1000])

    line = one_line_255(*asyncio.run(go()))
    assert "cannot send run" in line and "x" * 100 not in line
    assert b"x" * 1000 not in b"".join(received)


@pytest.mark.parametrize("subcommand", ["run", "batch"])
def test_a_fatal_error_right_after_auth_ok_is_said_inert(subcommand: str, tmp_path: Path) -> None:
    # Attacker III, F5: a server's fatal error message reached the operator's
    # terminal raw (escape sequences, a forged summary line). And a frame
    # that came in the same read as auth_ok waited for more data: the client
    # hung until the server closed.
    key_file = write_key(tmp_path / "key")
    key = bytes.fromhex(key_file.read_text().strip())
    hostile = "\x1b]0;PWNED\x07\x1b[2J\r\nfake: line"
    fatal = Error(code="internal", message=hostile, fatal=True)

    async def go() -> tuple[int, str]:
        async with fake_server(key, after_auth=[fatal]) as port:
            return await _cli(key_file, SUBCOMMANDS[subcommand](f"127.0.0.1:{port}", tmp_path))

    status, stderr = asyncio.run(go())
    assert status == (255 if subcommand == "run" else 3), (status, stderr)
    assert "Traceback" not in stderr
    assert "\x1b" not in stderr and "\x07" not in stderr and "\r" not in stderr
    assert "\\x1b]0;PWNED\\x07" in stderr
    assert not any(line.startswith("fake: line") for line in stderr.splitlines())
