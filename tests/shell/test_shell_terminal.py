"""``rexec shell`` and the terminal itself: what it asks of it, what it reads
from it in one go (Tab, Ctrl-C bursts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import ShellUnderTest

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
