"""What stays on the terminal of a line once it is accepted: the prompt and
the line as typed, each line of a unit after the first after its ``> ``,
whether it was typed that way or brought back from the history."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .conftest import ShellUnderTest

OpenShell = Callable[..., ShellUnderTest]


def test_a_recalled_unit_shows_its_continuation_prompts(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.more("for i in 1 2; do")
    shell.more("  echo item-$i")
    typed = shell.run("done")
    assert "> done\nitem-1\nitem-2\n" in typed
    # Up brings the unit back whole; it shows, and stays, as it was typed.
    shell.child.send("\x1b[A")
    shell.child.expect_exact("done")
    shell.child.send("\r")
    recalled = shell.prompt()
    assert re.search(
        r"[$#] for i in 1 2; do\n>   echo item-\$i\n> done\nitem-1\nitem-2\n", recalled
    )
    assert shell.status is None
    # A control character typed (Ctrl-Q Ctrl-G: a bell) stays inert, as ^G.
    shell.child.send("echo 'x\x11\x07y'")
    shell.child.expect_exact("y'")
    assert re.search(r"[$#] echo 'x\^Gy'\n", shell.run(""))
