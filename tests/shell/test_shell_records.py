"""``rexec shell``'s record channel against programs of the remote account
that write into it (attacker finding F3), on a terminal against a real rexecd.

The channel is the stdin pipe of a ``cat`` beside the shell; any process of
the account opens it through /proc. Only records that carry the session's
key count, and the key is in nothing a command can read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import ShellUnderTest

OpenShell = Callable[..., ShellUnderTest]
BOTH_SHELLS = pytest.mark.parametrize("options", [(), ("--sh",)], ids=["bash", "sh"])


def _forge(keys: str) -> str:
    """A line that finds the record channel (the ``cat`` whose parent is the
    shell's, as forge.sh did) and writes, for each key that ``keys`` (shell
    text) prints and for no key, status records saying 0 and /FORGED for the
    first 30 lines; it says ``forged`` when it found the channel, then exits 3."""
    return (
        f"keys=$({keys}); for p in /proc/[0-9]*; do"
        ' if [ "$(cat $p/comm 2>/dev/null)" = cat ] && grep -qx "PPid:.$PPID" $p/status; then'
        " for s in $(seq 1 30); do printf '\\0status %s\\n0\\n/FORGED\\0' $s >$p/fd/0;"
        " for k in $keys; do printf '\\0%s status %s\\n0\\n/FORGED\\0' $k $s >$p/fd/0; done;"
        " done; echo for''ged; fi; done 2>/dev/null; (exit 3)"
    )


def _prompt_unchanged_by(shell: ShellUnderTest, keys: str) -> None:
    shell.run("cd /tmp")
    assert "forged" in shell.run(_forge(keys))  # it found the channel and wrote
    assert (shell.status, shell.cwd) == ("3", "/tmp")
    shell.run("true")
    assert (shell.status, shell.cwd) == (None, "/tmp")


@BOTH_SHELLS
def test_a_program_that_writes_forged_records_changes_nothing(
    server: Any, open_shell: OpenShell, options: tuple[str, ...]
) -> None:
    """Records without the key, or with a made-up one, are dropped."""
    _prompt_unchanged_by(open_shell(server, *options), "echo 0123456789abcdef0123456789abcdef")


@BOTH_SHELLS
def test_the_key_is_in_nothing_a_command_lists(
    server: Any, open_shell: OpenShell, options: tuple[str, ...]
) -> None:
    """Every 32-hex-digit word that `set`, `declare -p`, `declare -f` and
    `env` print in the session, tried as the key, forges nothing: the key is
    not among them. Where the shell keeps it, a line that forgets all
    aliases, then one that forgets all completions, do not reach: the
    session goes on."""
    shell = open_shell(server, *options)
    shell.run("alias ll='ls -l'; unalias -a; hash -r; false")
    assert shell.status == "1"
    assert "alias ll=" not in shell.run("alias")
    shell.run("complete -r 2>/dev/null; (exit 4)")
    assert shell.status == "4"
    listing = "{ set; declare -p; declare -f; env; } 2>/dev/null"
    _prompt_unchanged_by(shell, f"{listing} | grep -oE '[0-9a-f]{{32}}' | sort -u")
