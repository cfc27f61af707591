"""``rexec shell`` idle at its prompt while rexecd shuts down (outsider finding F-B:
the notice came one line late, after a line typed meanwhile had run on the
draining server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import ShellUnderTest, plain

OpenShell = Callable[..., ShellUnderTest]


def test_shutdown_is_said_above_the_idle_prompt_and_enter_offers_to_reconnect(
    start_server: Callable[..., Any], open_shell: OpenShell, tmp_path: Path
) -> None:
    # A long grace: the server's end of the shell would come only after it.
    server = start_server("--shutdown-grace", "120")
    shell = open_shell(server)
    shell.run("cd /tmp")
    server.process.terminate()
    # Said at once, with no key pressed, and the prompt drawn again below it.
    shell.child.expect_exact("shutting down")
    shell.prompt()
    said = plain(shell.child.before)
    assert shell.cwd == "/tmp"
    # The next line is not run on the server that is going away: the offer comes.
    ran = tmp_path / "ran"
    shell.child.sendline(f"touch {ran}")
    shell.child.expect_exact("? [y/n]")
    offer = plain(shell.child.before)
    assert not ran.exists()
    assert "rexec:" not in offer, f"the notice was said twice: {said!r} {offer!r}"
    shell.child.sendline("n")
    assert shell.exit_status() == 255


def test_a_notice_during_a_line_is_said_at_the_next_prompt(
    start_server: Callable[..., Any], open_shell: OpenShell
) -> None:
    server = start_server("--shutdown-grace", "120")
    shell = open_shell(server)
    shell.child.sendline("echo sta''rted; read -r _")
    shell.child.expect_exact("started")
    server.process.terminate()
    shell.child.sendline("")  # the line ends normally, within the grace
    # Said at the prompt that follows (above it), once.
    shell.child.expect_exact("shutting down")
    shell.prompt()
    shell.child.sendline("true")
    shell.child.expect_exact("? [y/n]")
    shell.child.sendline("n")
    assert shell.exit_status() == 255
