"""``rexec put`` and ``rexec get``: the real CLI as a subprocess against a
real rexecd."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from client_helpers import CLI_TIMEOUT, cli_argv, kill_once, run_cli

MiB = 1024 * 1024


def rexec(server: Any, command: str, *args: str, key_file: str | None = None
          ) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    return run_cli(command, "--key-file", key_file or str(server.key_file), server.address, *args)


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if ".rexec-" in p.name]


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """relative path → ("dir", mode) or (sha256, mode)."""
    out: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        mode = stat.S_IMODE(path.stat().st_mode)
        content = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(path.relative_to(root))] = (content, mode if content != "dir" else 0)
    return out


def test_put_then_get_round_trip(server: Any, tmp_path: Path) -> None:
    data = os.urandom(32 * MiB + 7)
    name = "sp ace\tand\nnewline \u20ac\u2713.bin"
    source = tmp_path / name
    source.write_bytes(data)
    source.chmod(0o604)
    remote_dir = tmp_path / "remote dir"
    remote_dir.mkdir()

    # Into an existing remote directory: the file keeps its name.
    result = rexec(server, "put", str(source), str(remote_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"" and result.stderr == b""  # not a terminal: quiet
    remote = remote_dir / name
    assert remote.read_bytes() == data
    assert stat.S_IMODE(remote.stat().st_mode) == 0o604

    back_dir = tmp_path / "back"
    back_dir.mkdir()
    result = rexec(server, "get", "-v", str(remote), str(back_dir))
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(data).hexdigest()
    line = result.stderr.decode()
    # One line: the name's tab and newline are escaped as ls -b writes them.
    shown = name.replace("\t", "\\t").replace("\n", "\\n")
    assert line.count("\n") == 1
    assert line.startswith(f"received {shown}: {len(data)} bytes, sha256 {digest}, ")
    assert line.rstrip().endswith("MB/s")
    assert (back_dir / name).read_bytes() == data
    assert stat.S_IMODE((back_dir / name).stat().st_mode) == 0o604
    assert temp_files(tmp_path) == []


def test_put_replaces_and_renames(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "a"
    source.write_bytes(b"new")
    target = tmp_path / "b"
    target.write_bytes(b"old content")
    result = rexec(server, "put", "-p", str(source), str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == b"new"
    result = rexec(server, "get", str(source), str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c").read_bytes() == b"new"


def make_tree(root: Path) -> None:
    (root / "nested" / "deeper" / "deepest").mkdir(parents=True)
    (root / "empty dir").mkdir()
    (root / "nested" / "empty").mkdir()
    (root / "top.txt").write_bytes(b"top")
    (root / "zero").write_bytes(b"")
    (root / "nested" / "exec \u00e9").write_bytes(os.urandom(100_000))
    (root / "nested" / "exec \u00e9").chmod(0o750)
    (root / "nested" / "deeper" / "deepest" / "leaf").write_bytes(b"leaf")
    (root / "nested" / "deeper" / "deepest" / "leaf").chmod(0o600)


def test_recursive_put_and_get(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "src tree"
    make_tree(source)
    expected = tree(source)

    # A missing target becomes the copy...
    result = rexec(server, "put", "-r", str(source), str(tmp_path / "copy1"))
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "copy1") == expected
    # ...an existing one receives it under its name (as scp -r).
    (tmp_path / "into").mkdir()
    result = rexec(server, "put", "-r", str(source), str(tmp_path / "into"))
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "into" / "src tree") == expected

    result = rexec(server, "get", "-r", str(tmp_path / "copy1"), str(tmp_path / "back1"))
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "back1") == expected
    (tmp_path / "back2").mkdir()
    result = rexec(server, "get", "-r", str(tmp_path / "copy1") + "/", str(tmp_path / "back2"))
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "back2" / "copy1") == expected
    assert temp_files(tmp_path) == []


def test_directory_without_r_is_refused_before_connecting(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    # An unreachable address: the check comes first.
    argv = cli_argv(
        "put", "--key-file", str(tmp_path / "nokey"), "127.0.0.1:1", str(tmp_path / "d"), "x"
    )
    result = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False)
    assert result.returncode == 1
    assert b"is a directory (use -r" in result.stderr


@pytest.mark.parametrize(
    ("command", "what", "needle"),
    [
        ("put", "missing_source", b"(local.not_found)"),
        ("put", "missing_remote_dir", b"(file.not_found)"),
        ("get", "missing_remote_file", b"(file.not_found)"),
        ("get", "missing_local_dir", b"(local.not_found)"),
        ("get", "remote_is_dir", b"(file.is_directory)"),
    ],
)
def test_transfer_failures_exit_1(
    server: Any, tmp_path: Path, command: str, what: str, needle: bytes
) -> None:
    existing = tmp_path / "existing"
    existing.write_bytes(b"x")
    args = {
        "missing_source": (str(tmp_path / "nope"), str(tmp_path / "t")),
        "missing_remote_dir": (str(existing), str(tmp_path / "nodir" / "t")),
        "missing_remote_file": (str(tmp_path / "nope"), str(tmp_path / "t")),
        "missing_local_dir": (str(existing), str(tmp_path / "nodir" / "t")),
        "remote_is_dir": (str(tmp_path), str(tmp_path / "t")),
    }[what]
    result = rexec(server, command, *args)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rexec: "), lines
    assert needle in result.stderr
    assert not (tmp_path / "t").exists()
    assert temp_files(tmp_path) == []
    if what in ("missing_source", "missing_local_dir"):
        # Found before connecting: the server saw no connection.
        assert not any(r.get("event") == "connect" for r in server.audit_records())


def test_wrong_key_and_bad_usage_exit_255(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    key = tmp_path / "other.key"
    key.write_text("00" * 32 + "\n")
    key.chmod(0o600)
    result = rexec(server, "put", str(source), "x", key_file=str(key))
    assert result.returncode == 255
    assert b"auth.failed" in result.stderr
    result = subprocess.run(cli_argv("get", "onlyhost"), capture_output=True,
                            timeout=CLI_TIMEOUT, check=False)  # fmt: skip
    assert result.returncode == 255


def test_killed_get_leaves_no_file_under_the_final_name(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "huge.bin"
    with open(source, "wb") as file:
        file.truncate(4096 * MiB)  # sparse: costs nothing to make, takes seconds to send
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    target = target_dir / "huge.bin"
    argv = cli_argv(
        "get", "--key-file", str(server.key_file), server.address, str(source), str(target)
    )
    # Killed once data is being written to the temporary file.
    kill_once(argv, lambda: any(p.stat().st_size > 0 for p in temp_files(target_dir)))
    assert not target.exists()
    # Only the temporary name was ever used (SIGKILL can't clean it up).
    assert all(p.name.startswith(".huge.bin.rexec-") for p in target_dir.iterdir())


def test_progress_bar_only_on_a_terminal(server: Any, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(8 * MiB))
    argv = cli_argv("put", "--key-file", str(server.key_file), server.address, str(source),
                    str(tmp_path / "copy.bin"))  # fmt: skip
    child = pexpect.spawn(argv[0], argv[1:], timeout=CLI_TIMEOUT)
    try:
        child.expect(r"data\.bin \[[#-]{20}\] +\d+% .*MB/s ETA")
        child.expect(r"sent data\.bin: 8388608 bytes, sha256 [0-9a-f]{64}, [\d.]+ MB/s")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    # Not a terminal: no progress, no summary.
    result = rexec(server, "put", str(source), str(tmp_path / "copy2.bin"))
    assert result.returncode == 0 and result.stderr == b"" and result.stdout == b""
