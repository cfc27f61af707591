"""Options that act on the shell's own line editor, set inside a compound
line or a sourced file, as in bash over ssh: ``set -o vi`` / ``set -o emacs``
switch how rexec edits lines and the remote bash lives on. (``bind``, ``set
+o history``, ``shopt``, ``set -o posix``, ``set -e`` then ``false``, ``set
-u``, ``exec`` and ``exit 3`` in a compound line already behaved as in bash
over ssh: checked by hand, see the branch's report.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import ShellUnderTest

OpenShell = Callable[..., ShellUnderTest]


def printed(output: str, *lines: str) -> bool:
    """Whether ``output`` shows ``lines`` as whole lines, one after the other."""
    return ("\n" + "\n".join(lines) + "\n") in output


def edits_as_vi(shell: ShellUnderTest) -> str:
    """Type ``echo $X-vi`` and fix it with vi's command mode (Escape, ``0``,
    ``i``, Escape, ``x``): the output shows ``$X-vi`` only if the line editor
    is vi's (in emacs mode the keys make another line)."""
    shell.child.send("echo $X-vi\x1b")
    shell.child.send("0ia")
    shell.child.send("\x1bx\r")
    return shell.prompt()


def editing_options(shell: ShellUnderTest) -> str:
    return shell.run("set -o | grep -E '^(vi|emacs) '")


def test_set_o_vi_in_a_compound_line_switches_the_editor_and_the_shell_lives(
    server: Any, open_shell: OpenShell
) -> None:
    shell = open_shell(server)
    # With a soft limit of open files lowered in the session (shelluser8 F4):
    # the file such a line runs as is opened below it.
    shell.run("X=kept; ulimit -Sn 100; sleep 600 &")
    assert printed(shell.run("echo obvious"), "obvious")
    output = shell.run("true; set -o vi")
    assert "died" not in output and shell.status is None, output
    assert printed(edits_as_vi(shell), "kept-vi")
    assert "vi             \ton" in editing_options(shell)
    # The same shell: its job is still there.
    assert "sleep 600" in shell.run("jobs")
    shell.run("kill %1")


def test_set_o_emacs_in_a_compound_line_keeps_the_rest_of_the_line(
    server: Any, open_shell: OpenShell
) -> None:
    shell = open_shell(server)
    assert "died" not in shell.run("set -o vi")
    output = shell.run("set -o emacs && echo rest; echo of-the-line")
    assert shell.status is None and "died" not in output, output
    assert printed(output, "rest", "of-the-line")
    options = editing_options(shell)
    assert "emacs          \ton" in options and "vi             \toff" in options
    # Emacs keys again: Ctrl-A goes to the start of the line (vi's insert
    # mode would leave "echo " at the end: no such command).
    shell.child.send("typed-emacs\x01echo \r")
    assert printed(shell.prompt(), "typed-emacs")


def test_set_o_vi_in_a_sourced_file_switches_the_editor(
    server: Any, open_shell: OpenShell, tmp_path: Path
) -> None:
    (tmp_path / "rc.sh").write_text("set -o vi\nshopt -s nullglob\n")
    shell = open_shell(server)
    shell.run(f"X=kept; . {tmp_path}/rc.sh; echo sourced")
    assert printed(edits_as_vi(shell), "kept-vi")
    assert "died" not in shell.run("set +o vi; echo off")
    assert shell.status is None


def test_other_spellings_of_the_switch_in_a_line_keep_its_changes(
    server: Any, open_shell: OpenShell
) -> None:
    shell = open_shell(server)
    for line in (
        "builtin set -o vi; W=1",
        "command set -o emacs; W=2",
        "f() { set -o vi; }; f; W=3",
        "\\set -o emacs; W=4",
    ):
        output = shell.run(line)
        assert "died" not in output and shell.status is None, (line, output)
    assert printed(shell.run("echo W=$W"), "W=4")


def test_a_function_that_uses_set_is_kept_as_typed(server: Any, open_shell: OpenShell) -> None:
    # As bash over ssh: declare -f shows it, and another bash can run it.
    shell = open_shell(server)
    shell.run('g() { set -- x y; echo "n=$#"; }')
    assert "set -- x y" in shell.run("declare -f g")
    assert printed(shell.run("export -f g; bash -c g"), "n=2")


def test_positional_parameters_set_in_a_line_and_in_a_function_last(
    server: Any, open_shell: OpenShell
) -> None:
    """A line that names vi runs as a file that ``.`` runs; the positional
    parameters its ``set`` sets are the shell's, as typed into bash."""
    shell = open_shell(server)
    output = shell.run('set -o vi -- a "b c"; echo $# "$2"; f() { set -- x; echo f$#$1; }; f')
    assert printed(output, "2 b c", "f1x"), output
    assert printed(shell.run('echo $# "$2"'), "2 b c")
