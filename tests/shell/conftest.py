"""Driving the real ``rexec`` program on a terminal (pexpect) against a real rexecd.

``ShellUnderTest`` wraps a pexpect child running ``rexec shell`` and knows its
prompt. prompt_toolkit redraws a prompt when a line is accepted, so the text
of a prompt alone can't tell a new prompt from the redraw of the old one; a
new prompt is the one that turns bracketed paste on (``ESC [?2004h``) as it
starts, then shows ``[STATUS] user@host:CWD$`` (``#`` for root), or ``>``
when it continues an unfinished line.
"""

from __future__ import annotations

import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import psutil
import pytest

#: Bound on every wait for the program under test.
TIMEOUT = 15
#: Terminal size the tests give the program.
ROWS, COLS = 30, 100
#: What a new prompt starts with (see the module docstring).
PROMPT_START = b"\x1b[?2004h"
#: The prompt's text: optional status, user@host, ':', the directory (which
#: may hold a space, or a newline shown as \n), '$' or '#'.
PROMPT_TEXT = re.compile(rb"(?:\[([A-Za-z0-9]+)\] )?\S*@\S*?:([^\r\n]*?)[#$]")
#: The prompt of a continuation line.
CONTINUATION_TEXT = re.compile(rb">")
_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\r")
#: What must never show on the terminal: a Python error that escaped the program.
LEAKED_ERRORS = ("Traceback (most recent call last)", "exception was never retrieved")


def rexec_argv(*args: str) -> list[str]:
    """``rexec ARGS`` as this interpreter runs it."""
    return [sys.executable, "-m", "rexec_client.cli", *args]


def plain(data: bytes) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return _ESCAPES.sub(b"", data).decode("utf-8", "replace")


class ShellUnderTest:
    """A ``rexec shell`` on a pexpect terminal."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        #: The status label and directory the last prompt showed.
        self.status: str | None = None
        self.cwd = ""

    def prompt(self) -> str:
        """Wait for the next prompt; return what was shown before it (plain)."""
        self.child.expect_exact(PROMPT_START)
        before = plain(self.child.before)
        self.child.expect(PROMPT_TEXT)
        match = self.child.match
        self.status = match.group(1).decode() if match.group(1) else None
        self.cwd = match.group(2).decode()
        return before

    def run(self, line: str) -> str:
        """Type ``line``, wait for the next prompt; return the output between
        (including the redrawn line)."""
        self.child.sendline(line)
        return self.prompt()

    def more(self, line: str) -> str:
        """Type ``line``, which leaves the input unfinished, and wait for the
        continuation prompt; return what was shown before it."""
        self.child.sendline(line)
        self.child.expect_exact(PROMPT_START)
        before = plain(self.child.before)
        self.child.expect(CONTINUATION_TEXT)
        return before

    def exit_status(self) -> int:
        """Wait for the program to end; return its exit status."""
        self.child.expect(pexpect.EOF)
        self.child.close()
        assert self.child.exitstatus is not None, self.child.signalstatus
        return int(self.child.exitstatus)


@pytest.fixture
def terminal_env(tmp_path: Path) -> dict[str, str]:
    """The environment of the program under test: a known terminal type, no
    colour, a private history file, and no cursor-position requests (nothing
    on a pexpect terminal answers them)."""
    return {
        **os.environ,
        "TERM": "xterm-256color",
        "NO_COLOR": "1",
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "REXEC_HISTORY_FILE": str(tmp_path / "history"),
    }


@pytest.fixture
def spawn(terminal_env: dict[str, str]) -> Iterator[Callable[..., pexpect.spawn]]:
    """``spawn(argv)`` → a pexpect child on a ROWS×COLS terminal; every child
    is closed (killed if need be) at teardown, and the test fails if any
    child showed a Python traceback or an asyncio "never retrieved" report."""
    children: list[pexpect.spawn] = []
    transcripts: list[io.BytesIO] = []

    def start(argv: list[str], **options: Any) -> pexpect.spawn:
        child = pexpect.spawn(
            argv[0],
            argv[1:],
            env=terminal_env,
            dimensions=(ROWS, COLS),
            timeout=TIMEOUT,
            **options,
        )
        transcript = io.BytesIO()
        child.logfile_read = transcript
        children.append(child)
        transcripts.append(transcript)
        return child

    yield start
    for child in children:
        _drain(child)
        child.close(force=True)
    for transcript in transcripts:
        shown = plain(transcript.getvalue())
        leaked = [error for error in LEAKED_ERRORS if error in shown]
        assert not leaked, f"the program showed {leaked}:\n{shown[-3000:]}"


def _drain(child: pexpect.spawn) -> None:
    """Read what the child has still shown (into its transcript), briefly;
    one already closed (``exit_status``) was read to its end."""
    for _ in range(100):
        if child.closed:
            return
        try:
            child.read_nonblocking(65536, timeout=0.2)
        except (pexpect.TIMEOUT, pexpect.EOF):
            return


@pytest.fixture
def open_shell(spawn: Callable[..., pexpect.spawn]) -> Callable[..., ShellUnderTest]:
    """``open_shell(server, *options)`` → a ``rexec shell`` at its first
    prompt, after one line (``unset HISTFILE``)."""

    def open_(server: Any, *options: str) -> ShellUnderTest:
        child = spawn(
            rexec_argv("shell", "--key-file", str(server.key_file), *options, server.address)
        )
        shell = ShellUnderTest(child)
        shell.prompt()
        # The remote bash is the test user's login shell, which saves its
        # history on exit: not into the real ~/.bash_history.
        shell.run("unset HISTFILE")
        return shell

    return open_


def running(*argv: str, timeout: float = 15.0) -> bool:
    """Whether a process with exactly ``argv`` shows up within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in psutil.process_iter(["cmdline"]):
            if process.info["cmdline"] == list(argv):
                return True
        time.sleep(0.02)
    return False
