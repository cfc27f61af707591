"""PTY mode: ``rexec run -t`` and ``rexec shell --pty`` on a terminal, against
a real rexecd."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

import pexpect

from .conftest import COLS, ROWS, plain, rexec_argv

Spawn = Callable[..., pexpect.spawn]
#: A login shell's prompt ends like this, whatever shell the server user has.
REMOTE_PROMPT = re.compile(rb"[#$] ")


def run_t(server: Any, *command: str) -> list[str]:
    return rexec_argv(
        "run", "-t", "--key-file", str(server.key_file), server.address, "--", *command
    )


def login_shell(server: Any) -> list[str]:
    return rexec_argv("shell", "--pty", "--key-file", str(server.key_file), server.address)


def then_show_terminal(argv: list[str]) -> list[str]:
    """``sh -c`` running ``argv``, then printing its status and the terminal's
    settings: what the user's terminal is left in when rexec has gone."""
    return ["sh", "-c", f'{shlex.join(argv)}; echo "status=$?"; stty -a']


def assert_cooked(settings: str) -> None:
    """The terminal settings of ``stty -a`` are the usual line mode with echo
    (raw mode would show -icanon -echo -isig -opost)."""
    flags = settings.split()
    for flag in ("icanon", "echo", "isig", "opost", "icrnl"):
        assert flag in flags and f"-{flag}" not in flags, settings


def test_run_t_gives_a_terminal_of_the_local_size(server: Any, spawn: Spawn) -> None:
    child = spawn(run_t(server, "sh", "-c", "tty; stty size; exit 7"))
    child.expect(rb"/dev/pts/\d+")
    child.expect_exact(f"{ROWS} {COLS}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7


def test_run_t_passes_keys_through_raw(server: Any, spawn: Spawn) -> None:
    # The remote terminal's line discipline echoes and delivers the line; the
    # remote "head" ends after one line.
    child = spawn(run_t(server, "head", "-n", "1"))
    child.sendline("typed-line")
    child.expect_exact("typed-line")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_run_t_restores_the_terminal(server: Any, spawn: Spawn) -> None:
    child = spawn(then_show_terminal(run_t(server, "true")))
    child.expect(pexpect.EOF)
    output = plain(child.before)
    assert "status=0" in output
    assert_cooked(output.split("status=0", 1)[1])


def test_login_shell_follows_resizes(server: Any, spawn: Spawn) -> None:
    child = spawn(login_shell(server))
    child.expect(REMOTE_PROMPT)
    child.sendline("stty size")
    child.expect_exact(f"{ROWS} {COLS}")
    child.expect(REMOTE_PROMPT)
    # setwinsize changes the size of the client's terminal, and the kernel
    # signals SIGWINCH to it, as when a terminal window is resized.
    child.setwinsize(ROWS + 10, COLS + 20)
    child.sendline("stty size")
    child.expect_exact(f"{ROWS + 10} {COLS + 20}")
    child.expect(REMOTE_PROMPT)
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5


def test_login_shell_exit_restores_the_terminal(server: Any, spawn: Spawn) -> None:
    child = spawn(then_show_terminal(login_shell(server)))
    child.expect(REMOTE_PROMPT)
    child.sendline("exit 3")
    child.expect_exact("status=3")
    child.expect(pexpect.EOF)
    assert_cooked(plain(child.before))


def test_connection_lost_restores_the_terminal(server: Any, spawn: Spawn) -> None:
    child = spawn(then_show_terminal(login_shell(server)))
    child.expect(REMOTE_PROMPT)
    server.process.kill()
    child.expect_exact("status=255")
    message = plain(child.before)
    assert "lost" in message and "Traceback" not in message
    child.expect(pexpect.EOF)
    assert_cooked(plain(child.before))


def test_a_local_term_that_is_no_terminal_name_sends_the_default(server: Any, spawn: Spawn) -> None:
    """pty.term is a terminal name (protocol.md, run.pty): a local $TERM
    outside that charset is replaced by xterm-256color, not sent (the
    server would refuse the run with header.invalid)."""
    child = spawn(["env", "TERM=x;$(id)", *run_t(server, "sh", "-c", 'echo "term=$TERM"')])
    child.expect_exact("term=xterm-256color")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_run_t_into_a_pipe_that_closes_ends_the_command_quietly(server: Any, spawn: Spawn) -> None:
    # Output written straight from the connection (the echo's path) to a
    # pipe whose reader leaves: rexec cancels the command and exits without
    # a traceback, as with a pipe it copies from a task.
    argv = run_t(server, "sh", "-c", "while :; do echo line; done")
    child = spawn(["sh", "-c", f'{shlex.join(argv)} | head -n 3; echo "status=$?"'])
    child.expect(rb"status=(\d+)")
    output = plain(child.before)
    child.expect(pexpect.EOF)
    child.close()
    assert output.count("line") == 3, output
    assert "Traceback" not in output and "Error" not in output, output
