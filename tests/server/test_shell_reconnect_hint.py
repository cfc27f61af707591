"""``rexec shell`` reconnecting to a server that hangs (SIGSTOP): the failed
reconnect says there was no answer, without the "add --tls" hint of a first
connection, since the session ran without TLS on this very server a moment
before (outsider5 F24)."""

from __future__ import annotations

import signal

import pexpect

from tests.shell.conftest import (  # noqa: F401  (the fixtures, shared)
    open_shell,
    plain,
    spawn,
    terminal_env,
)

WAIT = 30


def test_a_failed_reconnect_to_a_hung_server_gives_no_tls_hint(server, open_shell) -> None:  # noqa: F811
    shell = open_shell(server, "--keepalive", "1", "--connect-timeout", "2")
    shell.run("X=5")
    server.process.send_signal(signal.SIGSTOP)
    try:
        shell.child.sendline("echo $X")
        shell.child.expect(r"reconnect to \S+\? \[y/n\]", timeout=WAIT)
        shell.child.sendline("y")
        shell.child.expect(r"rexec: no answer from [^\r\n]*\r?\n", timeout=WAIT)
        failure = plain(shell.child.after)
        assert failure.startswith(f"rexec: no answer from {server.address} within"), failure
        assert "TLS" not in failure and "--tls" not in failure, failure
        shell.child.expect(r"reconnect to \S+\? \[y/n\]", timeout=WAIT)
    finally:
        server.process.send_signal(signal.SIGCONT)
    shell.child.sendline("y")
    assert "the shell's state restored" in shell.prompt()
    assert "5" in shell.run("echo $X")
    shell.child.sendline("exit")
    shell.child.expect(pexpect.EOF, timeout=WAIT)
