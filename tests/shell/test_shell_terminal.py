"""``rexec shell`` and the terminal itself: what it asks of it, what it reads
from it in one go (Tab, Ctrl-C bursts)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import ShellUnderTest, plain

OpenShell = Callable[..., ShellUnderTest]
#: A cursor position request (CPR): ESC [ 6 n.
CURSOR_POSITION_REQUEST = b"\x1b[6n"


def test_the_terminal_is_never_asked_for_the_cursor_position(
    server: Any, open_shell: OpenShell, terminal_env: dict[str, str]
) -> None:
    # A terminal (or harness, or serial console) that does not answer a CPR
    # made each line typed ahead wait a second for the answer.
    del terminal_env["PROMPT_TOOLKIT_NO_CPR"]
    shell = open_shell(server)
    seen = b""
    for _ in range(3):
        shell.child.sendline("true")
        shell.child.expect_exact(b"\x1b[?2004h")
        seen += shell.child.before
    assert CURSOR_POSITION_REQUEST not in seen


@pytest.fixture
def short_dir() -> Path:
    """A directory with a short path (a long one wraps the prompt), holding
    ``dir with space/file-one`` and ``unique-file``."""
    with tempfile.TemporaryDirectory(prefix="rx") as name:
        root = Path(name)
        (root / "dir with space").mkdir()
        (root / "dir with space" / "file-one").write_text("in the spaced dir\n")
        (root / "unique-file").write_text("unique\n")
        yield root


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        # A unique file: the name, then a space (the next word can follow).
        ("cat uniq\t", "cat unique-file "),
        # A unique directory: its /, no space.
        ("cd dir\t", "cd dir\\ with\\ space/"),
        # Escaped spaces are part of the word.
        ("cat dir\\ with\\ space/fi\t", "cat dir\\ with\\ space/file-one "),
        # An open double quote: completed inside it, then closed.
        ('cat "dir with space/fi\t', 'cat "dir with space/file-one" '),
        ("cat 'dir with space/fi\t", "cat 'dir with space/file-one' "),
    ],
)
def test_tab_completes_a_path_as_bash_does(
    server: Any, open_shell: OpenShell, short_dir: Path, typed: str, shown: str
) -> None:
    shell = open_shell(server)
    shell.run(f"cd {short_dir}")
    shell.child.send(typed)
    shell.child.expect_exact(shown.rstrip()[-6:])  # the completion, drawn
    # What the line holds: run it (a trailing space must be there for the
    # word typed after Tab to be a word of its own).
    shell.child.send("\x05END\r")  # Ctrl-E: the end of the line, then a last word
    output = shell.prompt()
    assert plain(shown.encode()) + "END" in output


def test_three_ctrl_c_in_one_write_count_as_three(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("cd /tmp; KEPT=yes")
    # A line that ignores SIGINT and SIGTERM: only the third Ctrl-C, which
    # replaces the shell, ends it. One write, as a key held down sends them.
    shell.child.sendline("trap '' INT TERM; echo sta''rted; sleep 60")
    shell.child.expect_exact("started")
    shell.child.send("\x03\x03\x03")
    output = shell.prompt()
    assert "a new one goes on from the session's state" in output
    assert shell.cwd == "/tmp"
    assert "yes" in shell.run("echo $KEPT")


def test_a_burst_of_ctrl_c_on_a_line_the_first_one_ends_leaves_the_shell_alone(
    server: Any, open_shell: OpenShell
) -> None:
    # Key repeat, or an impatient user: the first SIGINT ends `sleep`; the
    # others must not go on to SIGTERM the group and kill the shell (which
    # took the background job and the shell's unsaved state with them).
    shell = open_shell(server)
    shell.run("KEPT=yes; sleep 300 & BG=$!")
    shell.child.sendline("echo sta''rted; sleep 60")
    shell.child.expect_exact("started")
    shell.child.send("\x03\x03\x03")
    output = shell.prompt()
    assert shell.status == "SIGINT"
    output += shell.run('echo "$KEPT $(kill -0 $BG && echo alive)"; kill $BG')
    assert "yes alive" in output
    assert "a new one goes on" not in output


def test_ctrl_c_drops_what_was_typed_on_its_line(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.child.sendline("echo rea''dy; cat; echo cat-ended")
    shell.child.expect_exact("ready")
    shell.child.sendline("kept line")
    shell.child.expect_exact("kept line")
    shell.child.expect_exact("kept line")  # the terminal's echo, then cat's
    shell.child.send("dropped\x03")
    output = shell.prompt()
    assert "cat-ended" not in output
    assert output.count("dropped") <= 1  # at most the terminal's echo: cat never got it
    assert shell.status == "SIGINT"
