"""Ctrl-C in ``rexec shell`` reaches the running line only, as the terminal's
Ctrl-C over ssh reaches the foreground job only: once the line has ended,
more Ctrl-C (the rest of a burst) are the prompt's; and a second Ctrl-C,
which terminates a line that ignores SIGINT, leaves the background jobs of
earlier lines and the shell alone (shelluser7 F20 retest, F31)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from .conftest import ShellUnderTest, running

OpenShell = Callable[..., ShellUnderTest]


def test_ctrl_c_ends_the_running_line_only(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    background = f"300.{secrets.randbelow(10**6):06d}"  # names this test's sleeps
    shell.run(f"sleep {background} & BGPID=$!")
    assert running("sleep", background)
    # A burst of three on a line that the first one ends: the other two are
    # the prompt's, and nothing dies but the line's sleep.
    foreground = f"100.{secrets.randbelow(10**6):06d}"
    shell.child.sendline(f"V6=z; sleep {foreground}")
    assert running("sleep", foreground)
    shell.child.send("\x03\x03\x03")
    output = shell.prompt()
    assert shell.status == "SIGINT"
    output += shell.run('kill -0 "$BGPID" && echo bg-alive')
    assert "a new one goes on" not in output
    assert "\nbg-alive\n" in output
    # A line that ignores SIGINT: the second Ctrl-C terminates it, and only it.
    shell.child.sendline("bash -c \"trap '' INT; echo sta''rted; sleep 100\"")
    shell.child.expect_exact("started")
    shell.child.sendintr()
    time.sleep(0.2)  # its own SIGINT (pending ones merge into one)
    shell.child.sendintr()
    output = shell.prompt()
    assert shell.status == "SIGTERM"
    assert "^C^C\n" in output  # the prompt on a line of its own
    assert "a new one goes on" not in output
    output = shell.run('echo "$V6"; kill -0 "$BGPID" && echo bg-alive; kill "$BGPID"')
    assert "\nz\nbg-alive\n" in output
