"""Issue 11's transfer findings against a real ``rexecd``: paths that escape
``cwd_roots`` (a link, a racing swap), puts in any chunking with memory
bounded by the credit, and temporary files left by a ``kill -9`` swept at
the next start."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from racing import swapping

from rexec.protocol import Error, Exit, Run, Stdin, Stdout

from .client import TransferClient
from .test_put_get import RssWatch, temp_files

MiB = 1024 * 1024


@pytest.fixture
def rooted(tmp_path: Path, start_server: Callable[..., Any]) -> tuple[Any, Path, Path]:
    """A server whose ``cwd_roots`` is tmp/root; tmp/outside beside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    return start_server("--cwd-roots", str(root)), root, outside


def test_get_of_a_link_out_of_the_roots_is_denied(
    rooted: tuple[Any, Path, Path], clients: Callable[[Any], TransferClient]
) -> None:
    """11.2(a): a link inside a root to a file outside gave the file."""
    server, root, outside = rooted
    (root / "escape").symlink_to(outside / "secret")
    (root / "direscape").symlink_to(outside)
    (root / "real").write_bytes(b"inside")
    (root / "alias").symlink_to(root / "real")  # absolute, and inside: followed
    client = clients(server)
    for path in ("escape", "direscape/secret", "../outside/secret", str(outside / "secret")):
        result = client.get(str(root / path) if not path.startswith("/") else path)
        assert result.code == "command.denied", path
        assert result.received == 0
    assert client.get(str(root / "alias")).received == len(b"inside")


def test_put_through_a_link_out_of_the_roots_is_denied(
    rooted: tuple[Any, Path, Path], clients: Callable[[Any], TransferClient]
) -> None:
    server, root, outside = rooted
    (root / "direscape").symlink_to(outside)
    (root / "target").symlink_to(outside / "secret")
    client = clients(server)
    assert client.put_bytes(str(root / "direscape" / "new"), b"x").code == "command.denied"
    # A link as the target itself is replaced, never written through.
    assert client.put_bytes(str(root / "target"), b"replaced").error is None
    assert (root / "target").read_bytes() == b"replaced" and not (root / "target").is_symlink()
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"


def test_a_racing_swap_never_writes_outside_nor_breaks_the_connection(
    rooted: tuple[Any, Path, Path], clients: Callable[[Any], TransferClient]
) -> None:
    """11.2(b): a put to root/dir/f while a local process swapped dir for a
    link to outside wrote 3 files outside in 86 tries, and realpath raising
    EINVAL ended connections with ``internal``."""
    server, root, outside = rooted
    client = clients(server)
    codes: dict[str | None, int] = {}
    with swapping(root / "dir", outside):
        for attempt in range(200):
            result = client.put_bytes(str(root / "dir" / f"f{attempt}"), b"payload")
            codes[result.code] = codes.get(result.code, 0) + 1
    assert sorted(os.listdir(outside)) == ["secret"], codes
    assert set(codes) <= {None, "command.denied", "file.not_found"}, codes
    assert len(os.listdir(root / "dir")) == codes.get(None, 0)
    assert client.put_bytes(str(root / "dir" / "after"), b"ok").error is None  # still connected


@pytest.mark.parametrize("frames", [4000, 262_144])
def test_a_put_in_one_byte_frames(
    server: Any, client: TransferClient, tmp_path: Path, frames: int
) -> None:
    """11.5: a put sent as more than 1024 frames failed with file.failed
    (EINVAL: one writev got more than IOV_MAX pieces); and the server held
    about 18 bytes of memory per byte of credit with one-byte frames."""
    data = os.urandom(frames)
    target = tmp_path / "one-byte-frames"
    result = client.start_put(str(target), size=frames, sha256=hashlib.sha256(data).hexdigest())
    rss = RssWatch(server.process.pid)
    sent = 0
    while sent < frames:
        client.poll_result(result)
        assert result.error is None, result.error
        credit = min(client.conn.stdin_credit(result.id), frames - sent)
        if not credit:
            client.wait_result(result, until=lambda: client.conn.stdin_credit(result.id) > 0
                               or result.error is not None)  # fmt: skip
            continue
        # One sendall for many frames: the frames are the point, not syscalls.
        client.sock.sendall(b"".join(
            client.conn.send(Stdin.with_data(result.id, data[i : i + 1]))
            for i in range(sent, sent + credit)
        ))  # fmt: skip
        sent += credit
        rss.sample(force=True)
    client.finish_put(result)
    rss.sample(force=True)
    assert result.error is None, result.error
    assert target.read_bytes() == data
    # The whole window (4 MiB) of one-byte frames would have been ~200 MiB
    # as a list of tiny objects; coalesced, it is the window plus a constant.
    assert rss.growth < 24 * MiB, rss.growth


def test_kill_9_mid_put_leaves_a_temporary_file_that_the_restart_removes(
    tmp_path: Path, start_server: Callable[..., Any]
) -> None:
    """11.8: a kill -9 mid-put left its temporary file, also after restart.
    The restarted rexecd removes exactly the temporary files it recorded."""
    state, work = tmp_path / "state", tmp_path / "work"
    work.mkdir()
    foreign = work / ".f.rexec-0123abcd.tmp"  # someone else's file, named like ours
    foreign.write_bytes(b"not rexecd's")
    server = start_server("--state-dir", str(state))
    with TransferClient.to(server) as client:
        result = client.start_put(str(work / "f"), size=2 * MiB, sha256="0" * 64)
        client.sock.sendall(client.conn.send(Stdin.with_data(result.id, b"x" * 100_000)))
        # Killed once the file is recorded too: it is recorded right after
        # it is created (rexec/files/_records.py), and a crash between the two
        # leaves an unrecorded file by design.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            len(temp_files(work)) == 2 and list(state.glob("transfer-*"))
        ):
            time.sleep(0.02)
        left = sorted(set(temp_files(work)) - {foreign.name})
        assert len(left) == 1
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
    assert (work / left[0]).exists()  # the crash left it
    restarted = start_server("--state-dir", str(state), key_file=server.key_file)
    assert temp_files(work) == [foreign.name]
    sweeps = [r for r in restarted.audit_records() if r.get("event") == "sweep"]
    assert [os.path.basename(p) for p in sweeps[-1]["removed_temp_files"]] == left


def test_a_racing_swap_never_runs_a_command_outside(
    rooted: tuple[Any, Path, Path], clients: Callable[[Any], TransferClient]
) -> None:
    """11.2: "the same rules for run's cwd". The cwd was checked by path
    (realpath) and then used by path, so a swap in between ran the command
    outside the roots."""
    server, root, outside = rooted
    client = clients(server)
    where: dict[str, int] = {}
    with swapping(root / "dir", outside):
        for _ in range(150):
            command_id = client.new_id()
            client.send(Run(id=command_id, argv=["pwd", "-P"], cwd=str(root / "dir")))
            output = b""
            while True:
                event = client.next_event()
                if isinstance(event, Stdout):
                    output += event.data
                elif isinstance(event, (Exit, Error)):
                    break
            seen = event.code if isinstance(event, Error) else output.decode().strip()
            where[seen] = where.get(seen, 0) + 1
    assert str(outside) not in where, where
    assert set(where) <= {str(root / "dir"), str(root / "dir.real"), "command.denied",
                          "cwd.invalid"}, where  # fmt: skip
