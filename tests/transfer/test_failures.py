"""Transfers that fail, against a real ``rexecd``: each ends with its one
command-scoped error, leaves no file under the final name and no temporary
file, and the connection carries on (protocol.md 5.6)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rexec.protocol import Cancel, Get, StdinEof

from .client import ServerClosed, TransferClient
from .test_put_get import MiB, temp_files

DATA = os.urandom(3 * MiB + 5)
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty directory for the transfers (tmp_path also holds the server's files)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def assert_connection_usable(client: TransferClient, directory: Path) -> None:
    result = client.put_bytes(str(directory / "after"), b"still here")
    assert result.done is not None, result.error
    (directory / "after").unlink()


# --- Interrupted puts: [transfer.put.atomic], [disconnect.kill] ------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_put_cut_midway_leaves_nothing(
    server: Any, clients: Callable[[Any], TransferClient], work: Path, existing: bool
) -> None:
    target = work / "target.bin"
    if existing:
        target.write_bytes(b"the old content")
    client = clients(server)
    result = client.start_put(str(target), size=len(DATA), sha256=DIGEST)
    client.send_data(result, io.BytesIO(DATA), limit=MiB)
    assert wait_until(lambda: bool(temp_files(work)))  # the transfer is under way
    client.close()  # the connection is cut: no stdin_eof, no more bytes
    assert wait_until(lambda: not temp_files(work)), "the temporary file stayed"
    if existing:
        assert target.read_bytes() == b"the old content"
    else:
        assert not target.exists()
    assert os.listdir(work) == (["target.bin"] if existing else [])


def test_put_cut_before_any_data(
    server: Any, clients: Callable[[Any], TransferClient], work: Path
) -> None:
    client = clients(server)
    client.start_put(str(work / "f"), size=10, sha256=DIGEST)
    assert wait_until(lambda: bool(temp_files(work)))
    client.close()
    assert wait_until(lambda: os.listdir(work) == [])


def test_half_close_ends_an_unfinished_put(client: TransferClient, work: Path) -> None:
    # [transfer.put.half_close]: the put's data can no longer arrive; the
    # client, still reading, gets file.cancelled, then the server closes.
    result = client.start_put(str(work / "f"), size=len(DATA), sha256=DIGEST)
    client.send_data(result, io.BytesIO(DATA), limit=MiB)
    client.sock.shutdown(socket.SHUT_WR)
    client.wait_result(result, until=lambda: result.error is not None or result.done is not None)
    assert result.code == "file.cancelled"
    with pytest.raises(ServerClosed):
        client.next_event(timeout=5)
    assert wait_until(lambda: os.listdir(work) == [])


def test_half_close_after_stdin_eof_still_gets_done(client: TransferClient, work: Path) -> None:
    # [close.client.eof]: a put whose data is all there completes.
    result = client.start_put(str(work / "f"), size=len(DATA), sha256=DIGEST)
    client.send_data(result, io.BytesIO(DATA))
    client.send(StdinEof(id=result.id))
    client.sock.shutdown(socket.SHUT_WR)
    client.wait_result(result, until=lambda: result.error is not None or result.done is not None)
    assert result.done is not None and result.done.sha256 == DIGEST
    assert (work / "f").read_bytes() == DATA


def test_cancel_ends_a_put(client: TransferClient, work: Path) -> None:
    # [transfer.cancel]: file.cancelled, and nothing left behind.
    result = client.start_put(str(work / "f"), size=len(DATA), sha256=DIGEST)
    client.send_data(result, io.BytesIO(DATA), limit=MiB)
    client.cancel(result)
    client.wait_result(result, until=lambda: result.error is not None or result.done is not None)
    assert result.code == "file.cancelled"
    assert wait_until(lambda: os.listdir(work) == [])
    assert_connection_usable(client, work)


def test_cancel_ends_a_get(client: TransferClient, work: Path) -> None:
    (work / "big").write_bytes(DATA * 8)
    command_id = client.new_id()
    client.send(Get(id=command_id, path=str(work / "big")))
    assert client.next_event().type == "file"
    client.send(Cancel(id=command_id))
    received = 0
    while (event := client.next_event()).type == "stdout":
        received += len(event.data)
    assert event.type == "error" and event.code == "file.cancelled"
    assert received < len(DATA) * 8
    assert_connection_usable(client, work)


# --- Declared size and digest: [transfer.put.digest] ----------------------------------


@pytest.mark.parametrize(
    "declared", [len(DATA) + 1, len(DATA) - 1, 0], ids=["short", "long", "zero"]
)
def test_size_mismatch(client: TransferClient, work: Path, declared: int) -> None:
    target = work / "f"
    result = client.put(str(target), io.BytesIO(DATA), size=declared, sha256=DIGEST)
    assert result.code == "file.size_mismatch"
    assert result.error is not None and not result.error.fatal
    assert os.listdir(work) == []
    assert_connection_usable(client, work)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_digest_mismatch(client: TransferClient, work: Path, existing: bool) -> None:
    target = work / "f"
    if existing:
        target.write_bytes(b"old")
    wrong = hashlib.sha256(DATA + b"!").hexdigest()
    result = client.put(str(target), io.BytesIO(DATA), size=len(DATA), sha256=wrong)
    assert result.code == "file.digest_mismatch"
    assert os.listdir(work) == (["f"] if existing else [])
    if existing:
        assert target.read_bytes() == b"old"
    assert_connection_usable(client, work)


# --- Paths that can't be used -----------------------------------------------------------


def test_put_into_a_missing_directory(client: TransferClient, work: Path) -> None:
    # Refused at once, before any byte is sent: the error is the first frame.
    result = client.start_put(str(work / "no such dir" / "f"), size=len(DATA), sha256=DIGEST)
    client.wait_result(result, until=lambda: result.error is not None or result.done is not None)
    assert result.code == "file.not_found"
    assert "no such dir" not in result.error.message  # [error.message.no_echo]
    assert os.listdir(work) == []
    assert_connection_usable(client, work)


def test_put_under_a_file_is_not_found(client: TransferClient, work: Path) -> None:
    (work / "plain").write_bytes(b"")
    assert client.put_bytes(str(work / "plain" / "f"), b"x").code == "file.not_found"


@pytest.mark.parametrize("path", ["dir", "dir/", "dir/.", "dir/.."])
def test_put_onto_a_directory(client: TransferClient, work: Path, path: str) -> None:
    (work / "dir").mkdir()
    result = client.put_bytes(f"{work}/{path}", b"x")
    assert result.code == "file.is_directory"
    assert sorted(os.listdir(work)) == ["dir"] and os.listdir(work / "dir") == []


def test_get_missing_source(client: TransferClient, work: Path) -> None:
    assert client.get(str(work / "missing")).code == "file.not_found"
    assert client.get(str(work / "missing dir" / "f")).code == "file.not_found"
    assert_connection_usable(client, work)


def test_get_a_directory(client: TransferClient, work: Path) -> None:
    result = client.get(str(work))
    assert result.code == "file.is_directory" and result.file is None


def test_get_a_fifo_is_refused_without_waiting(client: TransferClient, work: Path) -> None:
    # Opening a FIFO for reading would wait for a writer forever.
    os.mkfifo(work / "fifo")
    started = time.monotonic()
    result = client.get(str(work / "fifo"))
    assert result.code == "file.failed" and time.monotonic() - started < 5


# --- Permissions --------------------------------------------------------------------------


def test_permission_denied(
    permission_server: Any, clients: Callable[[Any], TransferClient], work: Path
) -> None:
    client = clients(permission_server)
    closed = work / "closed"
    closed.mkdir()
    (closed / "secret").write_bytes(b"secret")
    readonly = work / "readonly"
    readonly.mkdir()
    (readonly / "unreadable").write_bytes(b"x")
    (readonly / "unreadable").chmod(0o000)
    closed.chmod(0o000)
    readonly.chmod(0o555)
    try:
        assert client.put_bytes(str(closed / "f"), b"x").code == "file.permission_denied"
        assert client.put_bytes(str(readonly / "f"), b"x").code == "file.permission_denied"
        assert client.get(str(closed / "secret")).code == "file.permission_denied"
        assert client.get(str(readonly / "unreadable")).code == "file.permission_denied"
        # The same server still reads and writes where it may.
        assert client.put_bytes(str(work / "open"), b"ok").done is not None
    finally:
        closed.chmod(0o755)
        readonly.chmod(0o755)
    assert os.listdir(closed) == ["secret"]
    assert os.listdir(readonly) == ["unreadable"]


# --- Limits and shutdown -------------------------------------------------------------------


def test_transfers_count_as_running_commands(
    start_server: Callable[..., Any], clients: Callable[[Any], TransferClient], work: Path
) -> None:
    # [command.busy]: a transfer takes a command slot until its terminal frame.
    client = clients(start_server("--max-commands", "1"))
    first = client.start_put(str(work / "a"), size=1, sha256=hashlib.sha256(b"a").hexdigest())
    assert client.get(str(work / "a")).code == "busy"
    client.send_data(first, io.BytesIO(b"a"))
    assert client.finish_put(first).done is not None
    assert client.get(str(work / "a")).done is not None


def test_shutdown_ends_a_put_and_removes_its_temporary_file(
    start_server: Callable[..., Any], clients: Callable[[Any], TransferClient], work: Path
) -> None:
    # [close.server.shutdown]: the notice that the server is shutting down,
    # then a transfer still going when the grace ends is ended with
    # server.shutting_down, then the connection is closed.
    server = start_server("--shutdown-grace", "0.5")
    client = clients(server)
    target = work / "f"
    result = client.start_put(str(target), size=len(DATA), sha256=DIGEST)
    client.send_data(result, io.BytesIO(DATA), limit=MiB)
    assert wait_until(lambda: bool(temp_files(work)))
    server.process.send_signal(signal.SIGTERM)
    events = []
    try:
        while True:
            events.append(client.next_event(timeout=10))
    except ServerClosed:
        pass
    kinds = [(e.type, getattr(e, "code", None), getattr(e, "id", None)) for e in events
             if e.type == "error"]  # fmt: skip
    assert kinds == [
        ("error", "server.shutting_down", None),
        ("error", "server.shutting_down", result.id),
        ("error", "server.shutting_down", None),
    ]
    assert server.process.wait(timeout=15) == 0
    assert os.listdir(work) == []
