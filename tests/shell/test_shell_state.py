"""``rexec shell`` keeps the session's state from one line to the next, as one
bash over ssh does, whether a simple command, a compound line or a sourced
file changed it; a subshell stays a subshell; a new shell after a lost
connection or a killed shell gets all of it back."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import ShellUnderTest

OpenShell = Callable[..., ShellUnderTest]


def printed(output: str, *lines: str) -> bool:
    """Whether ``output`` (of ``ShellUnderTest.run``) shows ``lines`` as whole
    lines, one after the other."""
    return ("\n" + "\n".join(lines) + "\n") in output


def reconnect_after_losing(
    server: Any, start_server: Callable[..., Any], shell: ShellUnderTest
) -> None:
    """Kill ``server``, start another on its port and key, and answer the
    shell's offer to reconnect; it says the state was restored."""
    server.process.kill()
    server.process.wait()
    start_server("--port", str(server.port), key_file=server.key_file)
    shell.child.expect_exact("? [y/n]")
    shell.child.sendline("y")
    assert "state restored" in shell.prompt()


def test_cd_in_a_compound_line_lasts(server: Any, open_shell: OpenShell, tmp_path: Path) -> None:
    (tmp_path / "listed-file").write_text("")
    shell = open_shell(server)
    assert "listed-file" in shell.run(f"cd {tmp_path} && ls")
    assert shell.cwd == str(tmp_path)
    assert printed(shell.run("pwd"), str(tmp_path))


def test_export_in_a_compound_line_lasts(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    assert printed(shell.run("export X=1; echo $X"), "1")
    assert printed(shell.run("echo $X; sh -c 'echo child:$X'"), "1", "child:1")


def test_plain_variables_aliases_functions_umask_and_options_last(
    server: Any, open_shell: OpenShell
) -> None:
    shell = open_shell(server)
    shell.run("Y=2")
    shell.run("alias ll='echo listing'")
    shell.run('greet() { echo "hello $1"; }')
    shell.run("umask 027")
    shell.run("set -o pipefail")
    shell.run("shopt -s extglob")
    output = shell.run(
        "echo \"y=$Y\"; sh -c 'echo child-y=${Y-unset}'; ll; greet you; umask;"
        " false | true; echo pipe=$?; [[ ab == @(ab|cd) ]] && echo extglob"
    )
    assert printed(
        output,
        "y=2",
        "child-y=unset",
        "listing",
        "hello you",
        "0027",
        "pipe=1",
        "extglob",
    )


def test_a_sourced_file_changes_the_session(
    server: Any, open_shell: OpenShell, tmp_path: Path
) -> None:
    (tmp_path / "env.sh").write_text(
        "export FROM_FILE=exported\nPLAIN=plain\nsourced_fn() { echo fn-ok; }\n"
        "alias sourced_alias='echo alias-ok'\ncd /\n"
    )
    shell = open_shell(server)
    shell.run(f"cd {tmp_path}")
    shell.run("source ./env.sh")
    assert shell.cwd == "/"
    output = shell.run("echo $FROM_FILE $PLAIN; sourced_fn; sourced_alias")
    assert printed(output, "exported plain", "fn-ok", "alias-ok")


def test_directory_stack_cd_minus_and_unset(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("cd /tmp")
    shell.run("pushd /usr >/dev/null")
    assert printed(shell.run("dirs"), "/usr /tmp")
    shell.run("popd >/dev/null")
    assert shell.cwd == "/tmp"
    shell.run("cd /")
    assert printed(shell.run("cd -"), "/tmp")
    assert shell.cwd == "/tmp"
    shell.run("export GONE=1 KEPT=1; PLAIN_GONE=1")
    shell.run("unset GONE PLAIN_GONE")
    output = shell.run(
        "echo ${GONE-unset} ${PLAIN_GONE-unset} $KEPT; unset HOME; echo ${HOME-nohome}"
    )
    assert printed(output, "unset unset 1", "nohome")
    assert printed(shell.run("echo ${HOME-nohome}"), "nohome")


def test_a_subshell_stays_a_subshell(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("cd /tmp; Z=outer")
    shell.run("(cd /; Z=inner; umask 077; alias zz=true; true)")
    assert shell.cwd == "/tmp"
    assert printed(
        shell.run("echo $Z; umask; alias zz 2>&1 | grep -c 'not found'"),
        "outer",
        "0022",
        "1",
    )


def test_state_comes_back_after_a_reconnect(
    start_server: Callable[..., Any], open_shell: OpenShell
) -> None:
    first = start_server()
    shell = open_shell(first)
    shell.run("cd /tmp && pushd /usr >/dev/null && cd /etc")
    shell.run("export KEPT=yes; PLAIN='two words'; declare -A MAP=([k]=v)")
    shell.run("alias ll='echo listing'; greet() { echo hello; }; umask 027")
    shell.run("set -o pipefail; shopt -s extglob; set -- one 'two 2'")
    shell.run("sh -c 'exit 3'")
    assert shell.status == "3"
    reconnect_after_losing(first, start_server, shell)
    # The prompt shows the last line's status (what $? is), not the lost connection's.
    assert shell.cwd == "/etc" and shell.status == "3"
    output = shell.run(
        'echo "status=$? $KEPT/$PLAIN/${MAP[k]} $#:$2"; ll; greet; umask; dirs;'
        " set -o | grep -c 'pipefail.*on'; shopt -q extglob && echo extglob; cd -"
    )
    assert printed(
        output,
        "status=3 yes/two words/v 2:two 2",
        "listing",
        "hello",
        "0027",
        "/etc /tmp",
        "1",
        "extglob",
        "/usr",
    )


def test_a_change_made_by_the_line_just_before_the_cut_comes_back(
    start_server: Callable[..., Any], open_shell: OpenShell
) -> None:
    """The prompt after a line comes only once the state after it is safe on
    the client: a server lost right then still restores what that line set
    (a large variable makes the state take long enough to come that a prompt
    drawn before it would be caught)."""
    first = start_server()
    shell = open_shell(first)
    shell.run(
        "BIG=$(printf '%4000000s' ''); cd /usr; export LAST=yes; last() { echo last-fn; };"
        " alias la='echo last-alias'"
    )
    reconnect_after_losing(first, start_server, shell)
    assert shell.cwd == "/usr"
    assert printed(
        shell.run('echo "$LAST ${#BIG}"; last; la'), "yes 4000000", "last-fn", "last-alias"
    )


def replaced_by_three_ctrl_c(shell: ShellUnderTest) -> str:
    """Run a line that ignores SIGINT and SIGTERM and press Ctrl-C three
    times, so that the third ends the shell; what was shown up to the next
    prompt."""
    shell.child.sendline("trap '' INT TERM; echo sta''rted; sleep 60")
    shell.child.expect_exact("started")
    for _ in range(3):
        shell.child.sendintr()
        time.sleep(0.2)  # each its own SIGINT (pending ones merge into one)
    return shell.prompt()


def test_a_shell_killed_by_ctrl_c_is_replaced_with_the_session_state(
    server: Any, open_shell: OpenShell
) -> None:
    shell = open_shell(server)
    shell.run("cd /tmp; KEPT=yes")
    output = replaced_by_three_ctrl_c(shell)
    assert "a new one goes on from the session's state" in output
    assert "Traceback" not in output
    assert shell.cwd == "/tmp"
    assert printed(shell.run("echo $KEPT"), "yes")


def test_a_gone_directory_with_escapes_in_its_name_is_reported_inert(
    server: Any, open_shell: OpenShell
) -> None:
    # Attacker8 F3: anyone who names a directory the user enters chose the
    # text of the "is gone" line after a new shell: a terminal escape, and a
    # newline that forged a second rexec: line. (A short path: the prompt
    # shows it.)
    shell = open_shell(server)
    parent = tempfile.mkdtemp(prefix="rx", dir="/tmp")
    shell.run(
        f'd=$(printf \'{parent}/g\\033]0;T\\007\\nrexec: FORGED\'); mkdir "$d"; cd "$d"; rmdir "$d"'
    )
    os.rmdir(parent)
    output = replaced_by_three_ctrl_c(shell)
    assert "a new one goes on from the session's state" in output
    gone = [line for line in output.splitlines() if "is gone" in line]
    assert gone and "\\x1b]0;T\\x07\\nrexec: FORGED is gone" in gone[0], output
    assert "\x1b]0;" not in output and not re.search(r"^rexec: FORGED", output, re.M)
    # And the shell is where it says (shelluser8 F9: the prompt and $PWD kept
    # the dead path while commands ran in the home directory).
    assert "the shell is in" in gone[0]
    where = shell.run('[ "$PWD" = "$(pwd -P)" ] && [ "$PWD" = ~ ] && echo in-home')
    assert printed(where, "in-home")


def test_sh_fallback_keeps_state_too(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server, "--sh")
    shown = shell.run("help")
    assert "/bin/sh" in shown and "help NAME" not in shown  # dash has no help of its own
    shell.run("cd /tmp && export A=1; B=2; f() { echo f$A$B; }")
    assert shell.cwd == "/tmp"
    assert printed(
        shell.run('echo "${BASH_VERSION-no bash}"; f; pwd'),
        "no bash",
        "f12",
        "/tmp",
    )


def test_sh_lines_may_take_the_framing_s_descriptors(
    server: Any, open_shell: OpenShell, tmp_path: Path
) -> None:
    # The usual lock idiom takes descriptor 9, where sh's framing writes the end
    # of a line's output: the session goes on, and the user's files get
    # nothing of rexec's.
    shell = open_shell(server, "--sh")
    lock, other = tmp_path / "lock", tmp_path / "eight"
    assert printed(shell.run(f"exec 9>{lock} 8>{other}; echo locked"), "locked")
    assert printed(shell.run("echo two; echo err >&2"), "two", "err")
    assert shell.status is None
    # A FIFO of the user's on 9 is no session pipe either (attacker8 F7).
    fifo = tmp_path / "fifo"
    shell.run(f"mkfifo {fifo}; cat {fifo} >{fifo}.out & exec 9>{fifo}")
    assert printed(shell.run("echo hello-after"), "hello-after")
    shell.run(f"exec 9>{lock}; wait")
    assert (tmp_path / "fifo.out").read_bytes() == b""
    # With 9 and 8 taken, the session's stdout and stderr kept on 3 and 4 only,
    # or on none: the prompt comes at once (sh writes the end of the output
    # where it finds the session's pipes, and says when it has none), and the
    # next line runs, none of it taken as the hidden line's input.
    hidden = tmp_path / "hidden"
    output = shell.run(f"exec 3>&1 4>&2 >{hidden} 2>&1; echo hidden; echo hidden-err >&2")
    output += shell.run("exec 1>&3 2>&4; echo back")
    output += shell.run(f"exec 3>&- 4>&- >{hidden} 2>&1; echo gone; exec 3>&-")
    assert "\nhidden" not in output and "\nback\n" in output
    assert hidden.read_text() == "gone\n"
    assert lock.read_bytes() == b"" and other.read_bytes() == b""


def test_bash_lines_may_take_the_framing_s_descriptors(
    server: Any, open_shell: OpenShell, tmp_path: Path
) -> None:
    # bash keeps its end-of-output markers on two descriptors high up (254 and
    # 253 where ulimit -n allows): a line that takes them gets nothing of
    # rexec's in its files, and the session goes on (attacker8 F7).
    shell = open_shell(server)
    out, err = tmp_path / "out", tmp_path / "err"
    shell.run(f'n=$(ulimit -n); ((n > 256)) && n=256; eval "exec $((n-2))>{out} $((n-3))>{err}"')
    assert printed(shell.run("echo two; echo err >&2"), "two", "err")
    assert shell.status is None
    assert out.read_bytes() == b"" and err.read_bytes() == b""


def test_xtrace_traces_only_the_user_s_line(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    output = shell.run("set -x; echo traced")
    output += shell.run("echo again")
    output += shell.run("set +x")
    assert "__rexec" not in output, output
    # (Traced one level down, "++", as the line runs in an eval.)
    assert "+ echo traced\ntraced\n" in output and "+ echo again\nagain\n" in output
    assert "__rexec" not in shell.run("echo quiet")
    # set -v echoes each line once, as read, and nothing of rexec's (shelluser7
    # F19; the line that turns it on still shows rexec's tail).
    shell.run("set -v")
    output = shell.run("echo verbose; echo ag''ain")
    output += shell.run("set +v")
    assert "__rexec" not in output, output
    # The typed line shows after the prompt (more than once if the line
    # editor redrew it: escapes are stripped here); set -v's echo is the one
    # line that is the typed line alone.
    line = "echo verbose; echo ag''ain"
    assert "# " + line in output
    assert output.split("\n").count(line) == 1, output
    assert "\nverbose\nagain\n" in output


def test_the_remote_history_holds_each_typed_line_once(server: Any, open_shell: OpenShell) -> None:
    shell = open_shell(server)
    shell.run("set -o history")
    shell.run("echo first-line")
    shell.run("echo second-line")
    output = shell.run("history 4")
    entries = [line.split(None, 1)[1] for line in output.splitlines()[1:] if line.strip()]
    assert entries == ["set -o history", "echo first-line", "echo second-line", "history 4"], output
    shell.more("for i in 1; do")
    shell.run("echo loop-$i; done  # a comment")
    output = shell.run("history 2")
    entries = [line.split(None, 1)[1] for line in output.splitlines()[1:] if line.strip()]
    assert entries[-1] == "history 2" and "loop-$i" in entries[0] and "__rexec" not in output
