"""``rexec shell`` line editing as bash's (Ctrl-C, Ctrl-D, unfinished lines
continued with ``> ``), and a line's output and input through the session's
long-lived shell: byte for byte, never mixed with rexec's own framing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest

from .conftest import COLS, ROWS, ShellUnderTest, plain, rexec_argv

OpenShell = Callable[..., ShellUnderTest]


def test_ctrl_c_at_the_prompt_discards_the_line(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.child.send("echo not-run")
    shell.child.expect_exact("not-run")
    shell.child.sendintr()
    output = shell.prompt()
    assert "Traceback" not in output
    output = shell.run("echo after")
    assert "\nafter\n" in output and "not-run" not in output
    # Nor in a history search.
    shell.child.send("\x12ech")  # Ctrl-R
    shell.child.sendintr()
    assert "Traceback" not in shell.prompt()
    shell.child.sendline("exit")
    assert shell.exit_status() == 0


def test_enter_in_a_history_search_runs_the_line_found(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("echo UP''TEST-$((20 + 1))")
    shell.child.send("\x12UP'")  # Ctrl-R
    shell.child.expect_exact("TEST-$((20 + 1))")
    shell.child.send("\r")
    # Run at once, as bash does: its output, then a new prompt.
    assert "\nUPTEST-21\n" in shell.prompt()
    assert "\nnext\n" in shell.run("echo next")


def test_the_terminal_type_and_size_reach_the_remote_shell(
    server: Any, open_shell: OpenShell
) -> None:
    shell = open_shell(server)
    assert f"\n[xterm-256color {COLS}x{ROWS}]\n" in shell.run('echo "[$TERM ${COLUMNS}x$LINES]"')
    shell.child.setwinsize(ROWS + 5, COLS + 20)
    shell.prompt()  # redrawn at the new size
    assert f"\n{COLS + 20}x{ROWS + 5}\n" in shell.run('echo "${COLUMNS}x$LINES"')


def test_an_unfinished_line_continues_and_runs_as_one(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.more("for i in 1 2; do")
    shell.more("  echo item-$i")
    assert "\nitem-1\nitem-2\n" in shell.run("done")
    # Up-arrow brings the whole loop back as one entry.
    shell.child.send("\x1b[A")
    shell.child.expect_exact("done")
    shell.child.send("\r")
    assert "\nitem-1\nitem-2\n" in shell.prompt()
    shell.more("echo 'first")
    assert "\nfirst\nsecond\n" in shell.run("second'")
    shell.more("echo joined \\")
    assert "\njoined word\n" in shell.run("word")
    shell.more("cat <<EOF")
    shell.more("here $((1 + 1))")
    assert "\nhere 2\n" in shell.run("EOF")
    # Open to the end of the line as bash's own parser sees it, as over ssh:
    # a conditional's operator, the old arithmetic expansion.
    shell.more("[[ a == a &&")
    assert "\ndouble\n" in shell.run("b == b ]] && echo double")
    shell.more("echo $[1 +")
    assert "\n3\n" in shell.run("2]")
    assert shell.status is None


def test_bash_s_history_holds_only_what_was_typed(server: Any, open_shell: OpenShell) -> None:
    # Not the login's own lines (`if [ -r /etc/profile ]; then …`).
    shell = open_shell(server)
    shell.run("echo typed")
    listed = [line.split(None, 1)[1] for line in shell.run("history").splitlines()[1:] if line]
    assert listed[-2:] == ["echo typed", "history"], listed
    assert not [line for line in listed if "profile" in line or "__rexec" in line], listed


@pytest.mark.parametrize("word", ["exit", "logout"])  # logout: as in the login bash over ssh
def test_exit_or_logout_leaves_with_the_last_status(
    server: Any, open_shell: OpenShell, word: str
) -> None:
    shell = open_shell(server)
    shell.run("sh -c 'exit 4'")
    shell.child.sendline(word)
    assert shell.exit_status() == 4


def test_ctrl_z_at_the_prompt_does_nothing(server: Any, open_shell: OpenShell) -> None:
    # As bash, which ignores the SIGTSTP there; the line stays as typed.
    shell = open_shell(server)
    shell.child.send("echo a\x1ab")
    output = shell.run("")
    assert "\nab\n" in output
    assert shell.status is None  # 0: the prompt shows no status


def test_ctrl_c_and_ctrl_d_on_a_continuation_line(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.more("while true; do")
    shell.child.sendintr()  # drops the whole unit, as bash does
    shell.prompt()
    assert shell.status is None
    shell.more("echo 'never closed")
    shell.child.sendeof()  # runs it as it is: the shell says what is missing
    output = shell.prompt()
    assert "unexpected EOF" in output and shell.status == "2"
    assert "\nstill-here\n" in shell.run("echo still-here")


def test_output_arrives_byte_for_byte_and_framing_never_shows(server: Any, tmp_path: Path) -> None:
    data = os.urandom(200_000) + b"\x00" * 40 + b"\x00state 1\nrexec-0\x00"
    (tmp_path / "blob").write_bytes(data)
    # Shapes of rexec's own framing: a NUL-led marker, a record, a snapshot
    # section line; and the shell's own variables.
    marker_shapes = (
        "printf '\\0%032x' 7; printf '\\0status 1\\n0\\n/\\0';"
        " printf 'rexec-0123456789abcdef vars\\n'"
    )
    script = (f"cat {tmp_path}/blob\ncat {tmp_path}/blob >&2\n{marker_shapes}\necho end\n").encode()
    result = subprocess.run(
        rexec_argv("shell", "--key-file", str(server.key_file), server.address),
        input=script,
        capture_output=True,
        timeout=60,
        check=False,
    )
    expected_tail = (
        b"\x00" + b"%032x" % 7 + b"\x00status 1\n0\n/\x00rexec-0123456789abcdef vars\nend\n"
    )
    assert result.stdout == data + expected_tail
    assert result.stderr == data
    assert result.returncode == 0


def test_typed_input_reaches_only_its_own_line(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.child.sendline("echo rea''dy; sleep 2")
    shell.child.expect_exact("ready")
    shell.child.sendline("typed-for-sleep")  # sleep never reads it
    shell.prompt()
    shell.child.sendline("echo go''ne; cat; echo cat-ended")
    shell.child.expect_exact("gone")
    shell.child.sendeof()
    output = shell.prompt()  # what came after "gone"
    assert "cat-ended" in output and "typed-for-sleep" not in output


def test_a_line_runs_in_the_login_bash(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    assert "bash" in shell.run("help")
    # Interactive, as over ssh: .bashrc's "case $- in *i*" and aliases work.
    assert "\nbash-interactive\n" in shell.run(
        'case "$BASH_VERSION/$-" in ?*/*i*) echo bash-interactive; esac'
    )


def test_exit_in_a_line_ends_the_session(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.child.sendline("true && exit 6")
    assert shell.exit_status() == 6


def test_tab_completes_the_session_s_own_names(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("rexec_completion_fn() { echo fn-ran; }; REXEC_COMPLETION_VAR=var-value")
    shell.child.send("rexec_completion_f\t")
    shell.child.expect_exact("n")
    assert "\nfn-ran\n" in _accept(shell)
    shell.child.send("echo $REXEC_COMPLETION_V\t")
    shell.child.expect_exact("AR")
    assert "\nvar-value\n" in _accept(shell)


def _accept(shell: ShellUnderTest) -> str:
    shell.child.send("\r")
    try:
        return shell.prompt()
    except pexpect.TIMEOUT:
        # On a loaded machine the completion can arrive as a menu entry, which
        # takes the first Enter to accept; the line itself needs a second.
        shell.child.send("\r")
        return shell.prompt()


def test_background_output_shows_above_the_prompt(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("(sleep 1; echo from-background) &")
    # Shown above the prompt, which is drawn again under it, ready for typing.
    assert "from-background" in shell.prompt()
    assert "\nstill-usable\n" in shell.run("echo still-usable")
    assert "Traceback" not in plain(shell.child.before)
