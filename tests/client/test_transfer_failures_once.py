"""The outside tester's findings F4-F7 on what ``rexec put``/``get`` print
when a copy can't be made: the top-level target of ``get -r`` that is a
file fails once, in one line (as ``scp -r``); a ``put -r`` onto a remote
file says "not a directory" with a code; a put beside which no temporary
file can be made says so, not "no such file"; a get of a directory without
``-r`` says to use it. The real CLI against a real rexecd."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from client_helpers import run_cli

#: One ``rexec: ...`` line ending in one ``(code)``.
_ONE_LINE = re.compile(r"rexec: [^\n]*\((?P<code>[a-z_]+\.[a-z_]+)\)\n")


def rexec(server: Any, command: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_cli(command, "--key-file", str(server.key_file), server.address, *args)


def _one_line(result: subprocess.CompletedProcess[bytes]) -> tuple[str, str]:
    """The single error line and its code, the exit status being 1."""
    text = result.stderr.decode()
    assert result.returncode == 1, text
    match = _ONE_LINE.fullmatch(text)
    assert match is not None, text
    return text, match["code"]


def _tree(base: Path) -> Path:
    tree = base / "tree"
    (tree / "sub" / "empty").mkdir(parents=True)
    (tree / "a").write_bytes(b"a")
    (tree / "sub" / "b").write_bytes(b"b")
    (tree / "link").symlink_to("a")
    return tree


def test_get_r_onto_a_local_file_fails_once(server: Any, tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    existing = tmp_path / "a2.txt"
    existing.write_bytes(b"mine\n")
    text, code = _one_line(rexec(server, "get", "-r", str(tree), str(existing)))
    assert f"{existing}: not a directory" in text, text
    assert code == "local.failed"
    assert existing.read_bytes() == b"mine\n"  # left as it was


def test_get_r_a_file_in_the_way_deeper_fails_once_and_the_rest_is_copied(
    server: Any, tmp_path: Path
) -> None:
    """A local file where the remote tree has a directory with files (and a
    directory) beneath it: one line for it, none for what is beneath."""
    tree = _tree(tmp_path)
    (tree / "sub" / "empty" / "c").write_bytes(b"c")
    (tree / "sub" / "link").symlink_to("b")
    backup = tmp_path / "backup"  # an existing directory: the copy goes to backup/tree
    local = backup / "tree"
    local.mkdir(parents=True)
    (local / "sub").write_bytes(b"mine\n")
    text, code = _one_line(rexec(server, "get", "-r", str(tree), str(backup)))
    gone = "not a directory; nothing beneath it was copied"
    assert text == f"rexec: {local / 'sub'}: {gone} (local.failed)\n"
    assert (local / "a").read_bytes() == b"a" and (local / "link").readlink() == Path("a")
    assert (local / "sub").read_bytes() == b"mine\n"


def test_put_r_onto_a_remote_file_says_not_a_directory(server: Any, tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    existing = tmp_path / "a.txt"
    existing.write_bytes(b"theirs\n")
    text, code = _one_line(rexec(server, "put", "-r", str(tree), str(existing)))
    assert text == f"rexec: {existing}: not a directory (file.failed)\n"
    assert existing.read_bytes() == b"theirs\n"


def test_put_where_no_temporary_file_can_be_made_says_so(server: Any, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")
    # /proc/version exists; /proc takes no new file beside it.
    text, code = _one_line(rexec(server, "put", str(source), "/proc/version"))
    assert "/proc/version: cannot create a temporary file beside it" in text, text
    assert "/proc/version: no such file" not in text and code == "file.failed"


def test_failed_puts_leave_no_descriptor_open_in_rexecd(server: Any, tmp_path: Path) -> None:
    """A put whose temporary file can't be made leaked the directory's
    descriptor in rexecd, one per failure (found with the finding above)."""
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")
    fds = Path(f"/proc/{server.process.pid}/fd")
    rexec(server, "put", str(source), "/proc/version")  # connections and the like warmed up
    before = len(list(fds.iterdir()))
    for _ in range(5):
        rexec(server, "put", str(source), "/proc/version")
    assert len(list(fds.iterdir())) == before


def test_get_of_a_directory_without_r_suggests_it(server: Any, tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    text, code = _one_line(rexec(server, "get", str(tree), str(tmp_path / "t")))
    assert "the source is a directory (use -r to copy a tree)" in text, text
    assert code == "file.is_directory"
    assert not (tmp_path / "t").exists()
