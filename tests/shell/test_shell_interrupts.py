"""Ctrl-C in ``rexec shell`` reaches the running line only, as the terminal's
Ctrl-C over ssh reaches the foreground job only: the second Ctrl-C, which
terminates a line that ignores SIGINT, leaves the background jobs of earlier
lines and the shell alone (shelluser7 F31). (A burst of Ctrl-C on a line
that the first one ends: test_shell_terminal.)"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from .conftest import ShellUnderTest, running

OpenShell = Callable[..., ShellUnderTest]


def test_the_second_ctrl_c_terminates_the_line_s_programs_only(
    server: Any, open_shell: OpenShell
) -> None:
    shell = open_shell(server)
    background = f"300.{secrets.randbelow(10**6):06d}"  # names this test's sleep
    shell.run(f"V6=z; sleep {background} & BGPID=$!")
    assert running("sleep", background)
    shell.child.sendline("bash -c \"trap '' INT; echo sta''rted; sleep 100\"")
    shell.child.expect_exact("started")
    shell.child.sendintr()
    time.sleep(0.2)  # its own SIGINT (pending ones merge into one)
    shell.child.sendintr()
    output = shell.prompt()
    assert shell.status == "SIGTERM"
    assert "^C^C\n" in output  # the prompt on a line of its own
    output += shell.run('echo "$V6"; kill -0 "$BGPID" && echo bg-alive; kill "$BGPID"')
    assert "a new one goes on" not in output
    assert "\nz\nbg-alive\n" in output
