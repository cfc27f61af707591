"""``put`` and ``get`` against a real ``rexecd`` over a real socket
(protocol.md 5.6, "File transfer"): content, names, modes, memory."""

from __future__ import annotations

import hashlib
import io
import os
import pwd
import secrets
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from rexec.protocol import Get

from .client import TransferClient, file_digest

MiB = 1024 * 1024


def temp_files(directory: Path) -> list[str]:
    """Temporary files a put leaves in ``directory`` while it runs."""
    return [name for name in os.listdir(directory) if ".rexec-" in name and name.endswith(".tmp")]


def write_random(path: Path, size: int) -> str:
    """``size`` random bytes into ``path``, 1 MiB at a time; returns their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        left = size
        while left:
            chunk = os.urandom(min(MiB, left))
            digest.update(chunk)
            file.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class RssWatch:
    """Samples a process's resident memory; ``growth`` is the peak above the
    first sample."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._last = 0.0

    def sample(self, _: int = 0, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= 0.02:
            self._last = now
            self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def test_put_then_get_small_files(client: TransferClient, tmp_path: Path) -> None:
    # [transfer.put.atomic], [transfer.get.stream]: sizes around the chunk
    # boundaries, every byte value.
    for size in (0, 1, 255, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 3 * MiB + 17):
        data = bytes(range(256)) * (size // 256) + os.urandom(size % 256)
        target = tmp_path / f"f{size}"
        result = client.put_bytes(str(target), data)
        assert result.error is None, result.error
        assert result.done is not None
        assert (result.done.size, result.done.sha256) == (size, hashlib.sha256(data).hexdigest())
        assert target.read_bytes() == data
        sink = io.BytesIO()
        got = client.get(str(target), sink)
        assert got.error is None, got.error
        assert got.file is not None and got.file.size == size
        assert sink.getvalue() == data
        assert got.done is not None and got.done.sha256 == got.sha256 == result.done.sha256
    assert temp_files(tmp_path) == []


@pytest.mark.slow
def test_128_mib_round_trip_with_bounded_memory(
    server: Any, client: TransferClient, tmp_path: Path
) -> None:
    # The test: random bytes put then got back, identical sha256,
    # streamed on both sides; the server's memory stays flat
    # ([output.backpressure], [stdin.credit.grant]). The issue said 256 MiB;
    # 128 MiB is four times the growth allowed below, so a server that held
    # even a quarter of the file fails just the same, in half the time.
    size = 128 * MiB
    local = tmp_path / "random.bin"
    digest = write_random(local, size)
    remote = tmp_path / "remote" / "random copy.bin"
    remote.parent.mkdir()
    watch = RssWatch(server.process.pid)

    put = client.put_file(str(remote), local, mode=0o640, on_progress=watch.sample)
    assert put.error is None, put.error
    assert put.done is not None and (put.done.size, put.done.sha256) == (size, digest)
    assert file_digest(remote) == digest
    assert stat.S_IMODE(remote.stat().st_mode) == 0o640

    back = tmp_path / "back.bin"
    with open(back, "wb") as sink:
        got = client.get(str(remote), sink, on_progress=watch.sample)
    assert got.error is None, got.error
    assert got.file is not None and (got.file.size, got.file.mode) == (size, 0o640)
    assert got.received == size
    assert got.sha256 == digest and got.done is not None and got.done.sha256 == digest
    assert file_digest(back) == digest
    watch.sample()
    assert watch.growth < 32 * MiB, f"server RSS grew by {watch.growth / MiB:.1f} MiB"


@pytest.mark.slow
def test_get_from_a_client_that_does_not_read(
    server: Any, clients: Callable[[Any], TransferClient], tmp_path: Path
) -> None:
    # [transfer.get.stream] with [output.backpressure]: a client that stops
    # reading holds the server's reading of the file, not its memory.
    source = tmp_path / "big.bin"
    digest = write_random(source, 96 * MiB)
    client = clients(server)
    watch = RssWatch(server.process.pid)
    command_id = client.new_id()
    client.send(Get(id=command_id, path=str(source)))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        watch.sample(force=True)
        time.sleep(0.1)
    assert watch.growth < 32 * MiB, f"server RSS grew by {watch.growth / MiB:.1f} MiB"
    received = 0
    content = hashlib.sha256()
    while True:
        event = client.next_event()
        if event.type == "stdout":
            received += len(event.data)
            content.update(event.data)
        elif event.type in ("done", "error"):
            break
    assert event.type == "done", event
    assert received == 96 * MiB and content.hexdigest() == digest == event.sha256


NAMES = [
    "with spaces in it.txt",
    " leading and trailing ",
    "-starts-with-dash",
    "new\nline\tand tab",
    "quotes \"double\" 'single' and \\backslash",
    "控制 ünïcödé € 😀",
    "\x01\x02\x1b[31mescape\x7f",
    "$(echo no) `not run` ;&|<>*?[]{}!#~",
    "x" * 255,  # NAME_MAX: the temporary name is shortened, not the final one
]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_any_file_name(client: TransferClient, tmp_path: Path, name: str) -> None:
    # [transfer.path]: the path is a UTF-8 string; any character but NUL (and
    # "/" as the separator) is part of a name, never interpreted by a shell.
    directory = tmp_path / "dir with spaces" / "sub dir ✓"
    directory.mkdir(parents=True)
    target = directory / name
    data = b"content of " + name.encode() + os.urandom(100)
    result = client.put_bytes(str(target), data)
    assert result.error is None, result.error
    assert os.listdir(directory) == [name]
    assert target.read_bytes() == data
    sink = io.BytesIO()
    assert client.get(str(target), sink).done is not None
    assert sink.getvalue() == data


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o755, 0o400, 0o000, 0o2750, 0o1777])
def test_mode_is_kept(client: TransferClient, tmp_path: Path, mode: int) -> None:
    # [transfer.put.mode]: exactly the mode asked for, whatever the umask;
    # a get reports the file's mode.
    target = tmp_path / "file"
    result = client.put_bytes(str(target), b"data", mode=mode)
    assert result.error is None, result.error
    assert stat.S_IMODE(target.stat().st_mode) == mode
    got = client.get(str(target))
    assert got.file is not None and got.file.mode == mode


def test_put_replaces_an_existing_file(client: TransferClient, tmp_path: Path) -> None:
    # [transfer.put.atomic]: the old content is there until the new one
    # replaces it whole.
    target = tmp_path / "file"
    target.write_bytes(b"old content")
    old_inode = target.stat().st_ino
    assert client.put_bytes(str(target), b"new").error is None
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != old_inode  # a new file, renamed over the old one
    assert temp_files(tmp_path) == []


def test_file_under_construction_has_only_a_temporary_name(
    client: TransferClient, tmp_path: Path
) -> None:
    # [transfer.put.atomic]: while the bytes arrive they are in a temporary
    # file beside the target, mode 0600; the final name appears only at the end.
    target = tmp_path / "slow.bin"
    data = os.urandom(2 * MiB)
    result = client.start_put(str(target), size=len(data),
                              sha256=hashlib.sha256(data).hexdigest(), mode=0o755)  # fmt: skip
    source = io.BytesIO(data)
    client.send_data(result, source, limit=MiB)
    deadline = time.monotonic() + 10
    while not temp_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    [temp] = temp_files(tmp_path)
    assert temp.startswith(".slow.bin.rexec-")
    assert stat.S_IMODE((tmp_path / temp).stat().st_mode) == 0o600
    assert not target.exists()
    client.send_data(result, source)
    assert client.finish_put(result).done is not None
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert temp_files(tmp_path) == []


def test_relative_paths_are_relative_to_home(
    server: Any, clients: Callable[[Any], TransferClient]
) -> None:
    # [transfer.path]: the same default directory as a command's cwd, the
    # account's passwd home (not the daemon's $HOME); no "~" expansion (a
    # "~" is a character of the name).
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    if not os.access(home, os.W_OK):
        pytest.skip("the account's home is not writable")
    docs = f"rexec-test-{secrets.token_hex(6)}"
    (home / docs).mkdir()
    try:
        client = clients(server)
        assert client.put_bytes(f"{docs}/notes.txt", b"hello").error is None
        assert (home / docs / "notes.txt").read_bytes() == b"hello"
        sink = io.BytesIO()
        assert client.get(f"{docs}/notes.txt", sink).error is None
        assert sink.getvalue() == b"hello"
        assert client.get(f"~/{docs}/notes.txt").code == "file.not_found"
    finally:
        shutil.rmtree(home / docs)


def test_transfers_and_commands_share_a_connection(client: TransferClient, tmp_path: Path) -> None:
    # [command.concurrent]: a put in progress does not hold back a get.
    (tmp_path / "a").write_bytes(b"A" * 1000)
    data = os.urandom(MiB)
    put = client.start_put(str(tmp_path / "b"), size=len(data),
                           sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    source = io.BytesIO(data)
    client.send_data(put, source, limit=100_000)
    # The get's frames may interleave with the put's credit: read them apart.
    get_id = client.new_id()
    client.send(Get(id=get_id, path=str(tmp_path / "a")))
    seen: list[str] = []
    body = b""
    while "done" not in seen:
        event = client.next_event()
        if event.id == get_id:
            seen.append(event.type)
            if event.type == "stdout":
                body += event.data
    assert seen == ["file", "stdout", "done"] and body == b"A" * 1000
    client.send_data(put, source)
    assert client.finish_put(put).done is not None
    assert (tmp_path / "b").read_bytes() == data


def test_audit_records_each_transfer(server: Any, client: TransferClient, tmp_path: Path) -> None:
    # One record when a transfer starts (before the file is touched) and one
    # when it ends, with its outcome, byte count and sha256.
    data = b"audited"
    digest = hashlib.sha256(data).hexdigest()
    client.put_bytes(str(tmp_path / "f"), data)
    client.get(str(tmp_path / "f"))
    client.get(str(tmp_path / "missing"))
    records = [r for r in server.audit_records() if r["event"] in ("put", "get", "transfer_end")]
    assert [(r["event"], r.get("op"), r.get("code")) for r in records] == [
        ("put", None, None),
        ("transfer_end", "put", None),
        ("get", None, None),
        ("transfer_end", "get", None),
        ("get", None, None),
        ("transfer_end", "get", "file.not_found"),
    ]
    put, put_end, get, get_end = records[:4]
    assert put["path"] == str(tmp_path / "f") and put["size"] == len(data)
    assert put["sha256"] == digest and put["mode"] == "0o644"
    assert put_end["ok"] is True and put_end["bytes"] == len(data) and put_end["sha256"] == digest
    assert get["path"] == str(tmp_path / "f")
    assert get_end["ok"] is True and get_end["bytes"] == len(data) and get_end["sha256"] == digest
    assert records[5]["ok"] is False
