"""``rexec get`` and ``rexec put`` against a server that stops a transfer
part-way while it still answers pings (attacker5, "Malicious server, get"):
the client waited for ever. Now a transfer that gets nothing from the server
for ``--stall-timeout`` seconds fails with one line naming the file, status
1, and leaves no partial file. The server is scripted on the project's
protocol core (``fake_server``), the CLI is the real one, with ``--keepalive``
so that its pings are answered and the connection itself stays good."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_helpers import CLI_TIMEOUT, cli_argv, fake_server, write_key

from rexec.protocol import File, Get, Message, MessageBase, Ping, Pong, Stdout

#: What the stalling server sends of a file before it goes quiet.
_FIRST_PART = b"x" * 100_000


def stalling(event: Message) -> Iterator[MessageBase]:
    """Answer pings; start a get and never finish it; never grant a put
    credit beyond the first window."""
    if isinstance(event, Ping):
        yield Pong(seq=event.seq)
    elif isinstance(event, Get):
        yield File(id=event.id, size=10 * len(_FIRST_PART), mode=0o644)
        yield Stdout.with_data(event.id, _FIRST_PART)


def run_against_stalling_server(
    tmp_path: Path, *args: str, stall: str = "2", timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``rexec ARGS[0] --key-file K --keepalive 0.5 --stall-timeout STALL
    127.0.0.1:PORT ARGS[1:]`` against ``stalling``, for ``timeout`` seconds
    at most (then ``subprocess.TimeoutExpired``)."""
    key_file = write_key(tmp_path / "key")
    key = bytes.fromhex(key_file.read_text().strip())
    options = ["--key-file", str(key_file), "--keepalive", "0.5", "--stall-timeout", stall]

    async def go() -> subprocess.CompletedProcess[str]:
        async with fake_server(key, answer=stalling) as port:
            argv = cli_argv(args[0], *options, f"127.0.0.1:{port}", *args[1:])
            run = asyncio.to_thread(
                subprocess.run, argv, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL, cwd=tmp_path,
            )  # fmt: skip
            return await asyncio.wait_for(run, timeout + 5)

    return asyncio.run(go())


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, (result.returncode, result.stderr)
    return lines[0]


def test_get_from_a_server_that_stops_mid_file_fails_and_leaves_nothing(tmp_path: Path) -> None:
    result = run_against_stalling_server(tmp_path, "get", "/srv/big", "big")
    line = one_line(result)
    assert line.startswith("rexec: /srv/big -> big: the server sent nothing of it for 2 s"), line
    assert "--stall-timeout" in line and "(transfer.stalled)" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]  # no file, no temporary


def test_get_resume_keeps_what_a_stalled_transfer_received(tmp_path: Path) -> None:
    """With --resume a stall is an interruption: the start is kept for the
    next run, under the hidden partial name only."""
    result = run_against_stalling_server(tmp_path, "get", "--resume", "/srv/big", "big")
    assert "(transfer.stalled)" in one_line(result)
    parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert [p.read_bytes() for p in parts] == [_FIRST_PART]
    assert not (tmp_path / "big").exists()


def test_put_to_a_server_that_grants_no_credit_fails(tmp_path: Path) -> None:
    """The server takes the first window and then grants nothing more."""
    (tmp_path / "big").write_bytes(b"y" * (8 * 1024 * 1024))
    result = run_against_stalling_server(tmp_path, "put", "big", "/srv/big")
    line = one_line(result)
    assert line.startswith("rexec: big -> /srv/big: the server sent nothing of it for 2 s"), line
    assert "(transfer.stalled)" in line, line


def silent(event: Message) -> Iterator[MessageBase]:
    """A hung server past the handshake: no answer to anything, pings included."""
    return iter(())


def test_a_recursive_get_from_a_hung_server_ends_by_the_default_keepalive(tmp_path: Path) -> None:
    """retest6: ``get -r`` lists the remote tree with commands, which
    --stall-timeout does not bound; a hung server hung it for ever. A
    transfer's connection now keeps a keepalive by default (5 s, 3 pings)."""
    key_file = write_key(tmp_path / "key")
    key = bytes.fromhex(key_file.read_text().strip())

    async def go() -> subprocess.CompletedProcess[str]:
        async with fake_server(key, answer=silent) as port:
            argv = cli_argv(
                "get", "-r", "--key-file", str(key_file), f"127.0.0.1:{port}", "/srv/tree", "tree"
            )
            run = asyncio.to_thread(
                subprocess.run, argv, capture_output=True, text=True, timeout=60,
                stdin=subprocess.DEVNULL, cwd=tmp_path,
            )  # fmt: skip
            return await asyncio.wait_for(run, 60)

    result = asyncio.run(go())
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, (result.returncode, result.stderr)
    assert "keepalive" in lines[0] or "no answer" in lines[0], lines
    assert not (tmp_path / "tree").exists()


def test_a_stall_timeout_of_0_waits_for_ever_as_rsyncs(tmp_path: Path) -> None:
    """retest6: ``--stall-timeout 0`` was refused; rsync's ``--timeout=0`` and
    rexecd's own timeouts mean no limit."""
    with pytest.raises(subprocess.TimeoutExpired):
        run_against_stalling_server(tmp_path, "get", "/srv/big", "big", stall="0", timeout=4)
