"""``rexec shell`` on a server with ``max_timeout``: the remote shell is one
command, so the limit counts the session's age (outsider5 F27). When it
expires the user is told which limit it was, and the session goes on from
its state in a new shell."""

from __future__ import annotations


def test_the_servers_time_limit_ending_the_shell_is_named_and_the_state_kept(
    start_server, open_shell
) -> None:
    shell = open_shell(start_server("--max-timeout", "3", "--kill-grace", "0.2"))
    shell.run("KEPT=7")
    # 3 s and the kill grace: the server's limit is not known here, the shell's age is.
    shell.child.expect_exact(
        "was ended by the server's time limit for one command after 3 s", timeout=20
    )
    shell.child.expect_exact("a new one goes on from the session's state")
    shell.prompt()
    assert "7" in shell.run("echo $KEPT")
