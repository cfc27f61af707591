"""``set -x`` and ``set -v`` in ``rexec shell`` show the user's commands, never
rexec's own steps (outsider finding F0b: leaving after ``set -x`` printed
``+ PROMPT_COMMAND=``, ``+ '[' -r ~/.bash_logout ']'``, ``+ builtin exit 4``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from .conftest import ShellUnderTest, plain, running

OpenShell = Callable[..., ShellUnderTest]


def _traced(shown: str) -> list[str]:
    return [line for line in shown.splitlines() if line.startswith("+")]


def test_leaving_after_set_x_traces_nothing_of_rexec(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("set -x")
    # A line shows its own trace only (one level deeper than bash: an eval).
    shown = shell.run("true")
    assert _traced(shown) == ["++ true"], shown
    shown = shell.run("X=1; echo $X")
    assert _traced(shown) == ["++ X=1", "++ echo 1"], shown
    shell.child.sendline("exit 4")
    assert shell.exit_status() == 4
    shown = plain(shell.child.before)
    assert _traced(shown) == [], shown


def test_ctrl_d_after_set_xv_shows_nothing_of_rexec(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("set -xv")
    shell.child.sendeof()
    assert shell.exit_status() == 0
    shown = plain(shell.child.before)
    assert "rexec" not in shown and "PROMPT_COMMAND" not in shown, shown
    assert _traced(shown) == [], shown


def test_ctrl_c_after_set_x_traces_nothing_of_rexec(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("set -x")
    shell.run("PROMPT_COMMAND+='; echo pc-err >&2'")
    duration = f"30.{secrets.randbelow(10**6):06d}"
    shell.child.sendline(f"sleep {duration}")
    assert running("sleep", duration)  # Ctrl-C before exec is lost by bash itself
    shell.child.sendintr()
    shown = shell.prompt()
    assert shell.status == "SIGINT"
    assert "__rexec" not in shown and "PROMPT_COMMAND" not in shown, shown
    # The user's PROMPT_COMMAND runs, untraced (README), its stderr shown.
    assert "\npc-err\n" in shown, shown
    shown = shell.run("true")
    assert "__rexec" not in shown, shown
    assert "++ true" in _traced(shown) and "\npc-err\n" in shown, shown
