"""``rexec keygen``: a new key file, or one imported from stdin, in the format
rexecd reads (64 hex digits, mode 0600 in a 0700 directory), never replacing
a key without ``--force``. The real CLI, and a real rexecd using the key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import forkserver
import pytest
from client_helpers import CLI_TIMEOUT

KEY_FILE_FORMAT = re.compile(rb"[0-9a-f]{64}\n")


def keygen(
    *args: str, stdin: bytes = b"", home: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REXEC_", "XDG_"))}
    if home is not None:
        env["HOME"] = str(home)
    return forkserver.run(  # forked: without the program's imports (CLI_FORK_SERVER)
        [sys.executable, "-m", "rexec_client.cli", "keygen", *args], input=stdin, env=env,
        timeout=CLI_TIMEOUT, server=forkserver.CLI_FORK_SERVER,
    )  # fmt: skip


def test_a_new_key_in_the_default_place_is_the_one_rexecd_and_rexec_use(
    tmp_path: Path, start_server: Any
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = keygen(home=home)
    path = home / ".config" / "rexec" / "key"
    assert result.returncode == 0 and result.stdout.decode() == f"made a new key in {path}\n"
    assert KEY_FILE_FORMAT.fullmatch(path.read_bytes())
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    server = start_server(key_file=path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REXEC_", "XDG_"))}
    run = subprocess.run(
        [sys.executable, "-m", "rexec_client.cli", "run", server.address, "echo", "keyed"],
        env=env | {"HOME": str(home)}, capture_output=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    assert (run.returncode, run.stdout) == (0, b"keyed\n"), run.stderr


def test_an_existing_key_is_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert keygen("--key-file", str(path)).returncode == 0
    first = path.read_bytes()
    again = keygen("--key-file", str(path))
    assert again.returncode == 1 and path.read_bytes() == first
    lines = again.stderr.decode().splitlines()
    assert len(lines) == 1 and "exists; keeping it" in lines[0] and "--force" in lines[0]
    forced = keygen("--key-file", str(path), "--force")
    assert forced.returncode == 0 and path.read_bytes() != first
    assert KEY_FILE_FORMAT.fullmatch(path.read_bytes())
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"]  # no temporary file left


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_key_is_not_written_where_rexec_would_refuse_it(tmp_path: Path, mode: int) -> None:
    """retest5 item 8: keygen wrote a key into a 0777 directory ("Made a new
    key in …"), which rexecd and rexec then refused. It refuses at once, in
    rexec's own words, and writes nothing; a sticky directory (as /tmp) is
    fine, as for rexec."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    result = keygen("--key-file", str(shared / "key"))
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and result.stdout == b"", result
    assert lines == [
        f"rexec: key file {shared / 'key'}: the directory {shared} lets another user replace it "
        "(it must belong to this user or root, and be writable by no one else)"
    ]
    assert list(shared.iterdir()) == []
    # Deeper (retest6): refused before any directory of its own is made.
    deeper = keygen("--key-file", str(shared / "a" / "b" / "key"))
    assert deeper.returncode == 1 and f"the directory {shared} lets" in deeper.stderr.decode()
    assert list(shared.iterdir()) == []
    shared.chmod(mode | 0o1000)
    assert keygen("--key-file", str(shared / "key")).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_key_reached_through_a_link_into_another_users_directory_is_refused(
    tmp_path: Path,
) -> None:
    """Attacker8 F4: the directories the path's links lead through count as
    the path's own (sshd's StrictModes walks the real path): there the other
    user swaps the key for one they know."""
    theirs = tmp_path / "theirs"
    (theirs / "keys").mkdir(parents=True)
    os.chown(theirs, 65534, 65534)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keys").symlink_to(theirs / "keys")
    result = keygen("--key-file", str(tmp_path / "mine" / "keys" / "key"))
    assert result.returncode == 1 and f"the directory {theirs} lets" in result.stderr.decode()
    assert list((theirs / "keys").iterdir()) == []


def test_an_imported_key_works_with_the_server_it_came_from(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "client" / "key"
    # Pasted, in capitals, with blanks around it: the same 32 bytes.
    pasted = b"  " + server.key_file.read_bytes().strip().upper() + b"  \n"
    result = keygen("--import", "--key-file", str(path), stdin=pasted)
    assert result.returncode == 0 and result.stdout.decode() == f"stored the key in {path}\n"
    assert path.read_bytes() == server.key_file.read_bytes().strip().lower() + b"\n"
    run = subprocess.run(
        [sys.executable, "-m", "rexec_client.cli", "run", "--key-file", str(path), server.address,
         "echo", "imported"],
        capture_output=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    assert (run.returncode, run.stdout) == (0, b"imported\n"), run.stderr


@pytest.mark.parametrize(
    "stdin",
    [b"", b"abc\n", b"g" * 64 + b"\n", b"ab" * 33 + b"\n", b"ab" * 16 + b" " + b"ab" * 16 + b"\n"],
)
def test_no_key_on_stdin_writes_nothing(tmp_path: Path, stdin: bytes) -> None:
    path = tmp_path / "key"
    result = keygen("--import", "--key-file", str(path), stdin=stdin)
    assert result.returncode == 1 and not path.exists()
    lines = result.stderr.decode().splitlines()
    assert lines == ["rexec: no key on stdin: a key is 64 hex digits on one line"]


def test_rexecd_names_keygen_for_a_missing_key(server: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    run = subprocess.run(
        [sys.executable, "-m", "rexec_client.cli", "run", "--key-file", str(missing),
         server.address, "true"],
        capture_output=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    lines = run.stderr.decode().splitlines()
    assert run.returncode == 255 and len(lines) == 1
    assert "rexec keygen" in lines[0] and "A second machine" in lines[0]
