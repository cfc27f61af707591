"""The outside testers' findings on ``rexec put``/``get`` (findings
attacker1 and newcomer1), through the real CLI against a real ``rexecd``:
an empty REMOTE, ``-r`` with ``cwd_roots``, ``-r`` and symbolic links on
either side, special files in a tree, a get ended by SIGTERM or SIGHUP,
/proc files, and one home for transfers and commands."""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from client_helpers import CLI_TIMEOUT, cli_argv, run_cli

MiB = 1024 * 1024


def rexec(server: Any, command: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_cli(command, "--key-file", str(server.key_file), server.address, *args)


def _tree(base: Path) -> Path:
    tree = base / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a").write_bytes(b"a")
    (tree / "sub" / "b").write_bytes(b"b")
    return tree


@pytest.fixture
def rooted(tmp_path: Path, start_server: Callable[..., Any]) -> tuple[Any, Path]:
    root = tmp_path / "root"
    root.mkdir()
    return start_server("--cwd-roots", str(root)), root


@pytest.mark.parametrize("argv", [
    ("put", "-r", "{tree}", ""), ("put", "{tree}/a", ""), ("get", "", "-"),
    ("get", "-r", "", "{tmp}/back"),
])  # fmt: skip
def test_an_empty_remote_path_is_a_usage_error(
    rooted: tuple[Any, Path], tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """newcomer1 #1: ``put -r HOST tree ''`` wrote into the server's /; the
    others gave a pydantic traceback. (The server is confined to a root, so
    that a regression can't write into this machine's /.)"""
    server, _ = rooted
    tree = _tree(tmp_path)
    words = [word.format(tree=tree, tmp=tmp_path) for word in argv]
    before = set(os.listdir("/"))
    result = rexec(server, words[0], *words[1:])
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert lines == ["rexec: '': the remote path is empty (use '~' or '.' for the home directory)"]
    assert set(os.listdir("/")) == before
    assert not (tmp_path / "back").exists()


def test_recursive_copies_work_with_roots(rooted: tuple[Any, Path], tmp_path: Path) -> None:
    """attacker1 #3: -r never worked with cwd_roots ("-r needs 'test' on the
    server"), as its helpers ran in the home, outside the roots."""
    server, root = rooted
    tree = _tree(tmp_path)
    (tree / "link").symlink_to("a")
    result = rexec(server, "put", "-r", str(tree), str(root))
    assert result.returncode == 0, result.stderr
    assert (root / "tree" / "sub" / "b").read_bytes() == b"b"
    assert os.readlink(root / "tree" / "link") == "a"
    back = tmp_path / "back"
    result = rexec(server, "get", "-r", str(root / "tree"), str(back))
    assert result.returncode == 0, result.stderr
    assert (back / "sub" / "b").read_bytes() == b"b" and os.readlink(back / "link") == "a"


def test_recursive_copies_outside_the_roots_make_nothing(
    rooted: tuple[Any, Path], tmp_path: Path
) -> None:
    """The helpers' arguments are not confined by the roots: they run in a
    directory the server resolved within them, on paths relative to it."""
    server, _ = rooted
    tree = _tree(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    for target in (outside, outside / "new"):
        result = rexec(server, "put", "-r", str(tree), str(target))
        assert result.returncode == 1
        assert b"outside the allowed roots (command.denied)" in result.stderr
    assert list(outside.iterdir()) == []
    result = rexec(server, "get", "-r", str(tree), str(tmp_path / "back"))
    assert result.returncode == 1 and b"command.denied" in result.stderr
    assert not (tmp_path / "back").exists()


def test_get_r_writes_nothing_through_a_local_link_out(server: Any, tmp_path: Path) -> None:
    """newcomer1 #5: a local tree whose sub is a link leading out got
    outside_target/empty made through the link before failing."""
    remote = _tree(tmp_path / "remote")
    (remote / "sub" / "empty").mkdir()
    local, outside = tmp_path / "local", tmp_path / "outside_target"
    (local / "tree").mkdir(parents=True)
    outside.mkdir()
    (local / "tree" / "sub").symlink_to("../../outside_target")
    result = rexec(server, "get", "-r", str(remote), str(local))
    assert result.returncode == 1
    assert b"local.denied" in result.stderr
    assert list(outside.iterdir()) == []
    assert (local / "tree" / "a").read_bytes() == b"a"


def test_put_r_writes_nothing_through_a_remote_link(server: Any, tmp_path: Path) -> None:
    """newcomer1 #5: an existing remote tree/sub -> /outside_remote got the
    files of sub written into outside_remote."""
    tree = _tree(tmp_path / "local")
    remote, outside = tmp_path / "remote", tmp_path / "outside_remote"
    (remote / "tree").mkdir(parents=True)
    outside.mkdir()
    (remote / "tree" / "sub").symlink_to(outside)
    result = rexec(server, "put", "-r", str(tree), str(remote))
    assert result.returncode == 1
    assert b"a symbolic link is in the way" in result.stderr
    assert list(outside.iterdir()) == []


def test_special_files_in_a_tree_are_reported_and_skipped(server: Any, tmp_path: Path) -> None:
    """newcomer1 #18: a FIFO made every put -r fail; the README says such
    files are reported and skipped (as rsync: a line, exit 0)."""
    tree = _tree(tmp_path)
    os.mkfifo(tree / "fifo")
    target = tmp_path / "copy"
    result = rexec(server, "put", "-r", str(tree), str(target))
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().splitlines() == [
        f"rexec: {tree}/fifo: not a regular file (a FIFO, socket or device), skipped"
    ]
    assert (target / "sub" / "b").read_bytes() == b"b"
    assert not (target / "fifo").exists()
    assert rexec(server, "put", "-r", "-q", str(tree), str(tmp_path / "quiet")).stderr == b""


def test_a_skipped_files_name_is_printed_escaped(server: Any, tmp_path: Path) -> None:
    """attacker5 F16: a FIFO named with an escape sequence and a newline drove
    the terminal and forged a line of its own."""
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "x\x1b]0;title\x07\nrexec: forged")
    result = rexec(server, "put", "-r", str(tree), str(tmp_path / "copy"))
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.decode().splitlines()
    assert "\x1b" not in line and "\\x1b" in line and "\\n" in line, line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_get_ended_by_a_signal_leaves_no_partial_file(
    server: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    """newcomer1 #7: SIGTERM or SIGHUP left .NAME.rexec-XXXX.tmp behind
    (Ctrl-C cleaned up)."""
    source = tmp_path / "big"
    with open(source, "wb") as file:
        file.truncate(4096 * MiB)  # sparse: quick to make, long to send
    down = tmp_path / "down"
    down.mkdir()
    argv = cli_argv("get", "--key-file", str(server.key_file), server.address, str(source),
                    str(down / "big.got"))  # fmt: skip
    process = subprocess.Popen(argv, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + CLI_TIMEOUT
        # Under way once its temporary file has grown.
        while not any(p.stat().st_size for p in down.iterdir()):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        process.send_signal(sig)
        assert process.wait(timeout=CLI_TIMEOUT) == 128 + sig
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()
    assert list(down.iterdir()) == []


def test_a_proc_file_comes_whole(server: Any) -> None:
    """newcomer1 #19: ``get HOST /proc/cpuinfo -`` gave 0 bytes, exit 0."""
    result = rexec(server, "get", "/proc/self/status", "-")
    assert result.returncode == 0, result.stderr
    assert b"Name:" in result.stdout and b"Pid:" in result.stdout


def test_transfers_and_commands_share_one_home(server: Any) -> None:
    """newcomer1 #2: a put to a relative path landed in the daemon's $HOME,
    while commands ran in the account's passwd home."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    if not os.access(home, os.W_OK):
        pytest.skip("the account's home is not writable")
    name = f"rexec-test-{secrets.token_hex(6)}"
    local = Path.home() / "source"  # HOME is the test's own, not the account's
    local.write_bytes(b"one home")
    try:
        assert rexec(server, "put", str(local), name).returncode == 0
        assert rexec(server, "put", str(local), f"~/{name}.2").returncode == 0
        result = subprocess.run(
            cli_argv("run", "--key-file", str(server.key_file), server.address,
                     "--", "cat", name, f"{name}.2"),
            capture_output=True, timeout=CLI_TIMEOUT, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"one home" * 2
    finally:
        (home / name).unlink(missing_ok=True)
        (home / f"{name}.2").unlink(missing_ok=True)
