"""``rexec put``/``get`` as scp and rsync users expect (issue 13): ``-`` for
standard input and output, ``-p`` keeping modification times, ``~/`` as the
remote home, ``-r`` copying symbolic links as links both ways, and
``--resume`` continuing a transfer that was killed."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from client_helpers import cli_argv, kill_once, run_cli

MiB = 1024 * 1024


def rexec(server: Any, command: str, *args: str, input: bytes | None = None
          ) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    return run_cli(command, "--key-file", str(server.key_file), server.address, *args, input=input)


def test_dash_is_standard_input_and_output(server: Any, tmp_path: Path) -> None:
    """``put HOST - R`` failed (no file named -) and ``get HOST R -`` wrote a
    file named ``-``. A put from a pipe has no size known in advance."""
    data = os.urandom(3 * MiB + 5)
    target = tmp_path / "from-stdin"
    result = rexec(server, "put", "-", str(target), input=data)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == data
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    puts = [r for r in server.audit_records() if r.get("event") == "put"]
    assert puts[-1]["size"] is None and puts[-1]["sha256"] is None  # given at the end

    result = rexec(server, "get", str(target), "-", "-v")
    assert result.returncode == 0, result.stderr
    assert result.stdout == data
    assert not (Path.cwd() / "-").exists()
    assert re.search(rb"received from-stdin: 3145733 bytes, sha256 " +
                     hashlib.sha256(data).hexdigest().encode(), result.stderr)  # fmt: skip


def test_preserve_keeps_modification_times(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "old"
    source.write_bytes(b"from 2001")
    os.utime(source, (1_000_000_000, 1_000_000_000))
    assert rexec(server, "put", "-p", str(source), str(tmp_path / "kept")).returncode == 0
    assert rexec(server, "put", str(source), str(tmp_path / "fresh")).returncode == 0
    assert (tmp_path / "kept").stat().st_mtime == 1_000_000_000
    assert (tmp_path / "fresh").stat().st_mtime > time.time() - 600
    assert rexec(server, "get", "-p", str(source), str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back").stat().st_mtime == 1_000_000_000


def test_tilde_is_the_remote_home(server: Any, tmp_path: Path) -> None:
    """``~`` is the home commands run in: the account's passwd home."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    if not os.access(home, os.W_OK):
        pytest.skip("the account's home is not writable")
    name = f"rexec-test-{secrets.token_hex(6)}"
    source = tmp_path / name
    source.write_bytes(b"at home")
    try:
        assert rexec(server, "put", str(source), f"~/{name}").returncode == 0
        assert (home / name).read_bytes() == b"at home"
        (home / name).unlink()
        assert rexec(server, "put", str(source), "~").returncode == 0  # into the home directory
        assert rexec(server, "get", f"~/{name}", str(tmp_path / "back")).returncode == 0
        assert (tmp_path / "back").read_bytes() == b"at home"
    finally:
        (home / name).unlink(missing_ok=True)
    result = rexec(server, "get", "~root/f", str(tmp_path / "other"))
    assert result.returncode == 255 and b"~user paths are not supported" in result.stderr


def make_linked_tree(root: Path, outside: Path) -> None:
    (root / "dir").mkdir(parents=True)
    (root / "file").write_bytes(b"content")
    (root / "to-file").symlink_to("file")
    (root / "dir" / "up").symlink_to("../file")
    (root / "to-outside").symlink_to(outside)  # a directory out of the tree
    (root / "dangling").symlink_to("nowhere")


def links(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): os.readlink(p) for p in root.rglob("*") if p.is_symlink()}


def test_recursive_copies_links_as_links_both_ways(server: Any, tmp_path: Path) -> None:
    """``get -r`` dropped links and ``put -r`` followed them; now both keep
    them as links, never following one out of the tree."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not to be copied")
    source = tmp_path / "tree"
    make_linked_tree(source, outside)
    expected = links(source)

    result = rexec(server, "put", "-r", "-v", str(source), str(tmp_path / "remote"))
    assert result.returncode == 0, result.stderr
    assert links(tmp_path / "remote") == expected
    assert (tmp_path / "remote" / "file").read_bytes() == b"content"
    assert b"link " in result.stderr  # says what it made

    result = rexec(server, "get", "-r", str(tmp_path / "remote"), str(tmp_path / "back"))
    assert result.returncode == 0, result.stderr
    assert links(tmp_path / "back") == expected
    assert not list((tmp_path / "back").rglob("secret"))


def partials(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".part")]


#: The resumed file, and how much of it has arrived when the transfer is
#: killed: what is left (126 MiB) takes loopback a tenth of a second or more,
#: a wide window for a kill that follows the check within milliseconds.
SIZE = 128 * MiB
KILL_PAST = 2 * MiB


@pytest.mark.parametrize("direction", ["get", "put"])
def test_resume_continues_a_killed_transfer(server: Any, tmp_path: Path, direction: str) -> None:
    source = tmp_path / "big"
    with open(source, "wb") as file:
        file.truncate(SIZE)  # sparse: free to make, a while to send
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    target = target_dir / "big"
    argv = cli_argv(direction, "--resume", "--key-file", str(server.key_file), server.address,
                    str(source), str(target))  # fmt: skip
    kill_once(argv, lambda: any(p.stat().st_size > KILL_PAST for p in partials(target_dir)))
    deadline = time.monotonic() + 10  # a put's server keeps what it got once it sees the loss
    while not partials(target_dir) and time.monotonic() < deadline:
        time.sleep(0.01)
    kept = partials(target_dir)[0].stat().st_size
    assert not target.exists() and kept > 0

    result = rexec(server, direction, "--resume", "-v", str(source), str(target))
    assert result.returncode == 0, result.stderr
    resumed = int(re.search(rb"resumed after (\d+)", result.stderr).group(1))  # type: ignore[union-attr]
    assert 0 < resumed <= SIZE
    with open(target, "rb") as file:
        while block := file.read(8 * MiB):
            assert block.count(0) == len(block)
    assert target.stat().st_size == SIZE
    assert partials(target_dir) == []
