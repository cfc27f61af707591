"""The built-in commands of ``rexec shell``: what only rexec can do.

A line is a built-in when its first word names one and the rest is what the
built-in takes; anything else runs in the remote shell. So ``timeout 5 make``
is the remote program of that name, ``help cd`` is bash's help, and ``!CMD``
runs CMD here while ``! CMD`` (with a space) is the shell's negation.
Everything a shell does itself (``cd``, ``export``, ``alias`` …) is the
remote shell's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import posixpath
import shlex
from collections.abc import Awaitable, Callable
from typing import Protocol

from .. import transfer
from ..cli.common import positive_float
from ..cli.transfers import Reporter
from ..connection import ClientConnection
from ..result import RETURNCODE_SIGNAL_BASE
from .display import say
from .state import SessionState

#: Status of a built-in used wrongly, as shells use it.
EXIT_USAGE = 2


class Shell(Protocol):
    """What built-ins act on: the session and its current connection."""

    connection: ClientConnection
    state: SessionState


class ExitShell(Exception):
    """Raised by ``exit``: leave the shell with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Builtin:
    """One built-in: its usage line, what it does, and when a line is it."""

    name: str
    usage: str
    summary: str
    run: Callable[[Shell, str], Awaitable[int]]
    #: Whether the rest of the line is one this built-in takes (else the line
    #: is the remote shell's).
    takes: Callable[[str], bool] = lambda rest: True


def find_builtin(line: str) -> tuple[Builtin, str] | None:
    """The built-in ``line`` calls and the rest of the line, or None when the
    line runs in the remote shell (see the module docstring)."""
    line = line.strip()
    if line.startswith("!") and len(line) > 1 and not line[1].isspace():
        return LOCAL, line[1:]
    word, *others = line.split(None, 1)
    rest = others[0].strip() if others else ""
    builtin = BUILTINS.get(word)
    if builtin is None or "\n" in line or not builtin.takes(rest):
        return None
    return builtin, rest


# --- the built-ins ----------------------------------------------------------------


async def _timeout(shell: Shell, rest: str) -> int:
    state = shell.state
    if rest == "off":
        state.timeout = None
    elif rest:
        try:
            state.timeout = positive_float(rest)
        except argparse.ArgumentTypeError as exc:
            say(f"timeout: {exc} (or 'off')")
            return EXIT_USAGE
    else:
        print(f"timeout: {'off' if state.timeout is None else f'{state.timeout:g} s'}")
    return 0


async def _exit(shell: Shell, rest: str) -> int:
    if not rest:
        raise ExitShell(shell.state.last_status)
    if not (rest.isascii() and rest.isdigit()) or int(rest) > 255:
        say("exit: the status must be a number from 0 to 255")
        return EXIT_USAGE
    raise ExitShell(int(rest))


async def _put(shell: Shell, rest: str) -> int:
    return await _transfer(shell, "put", rest)


async def _get(shell: Shell, rest: str) -> int:
    return await _transfer(shell, "get", rest)


async def _transfer(shell: Shell, verb: str, rest: str) -> int:
    """``put LOCAL [REMOTE]`` / ``get REMOTE [LOCAL]``: one file, the remote
    side relative to the session's directory, the local side to this one's;
    a missing destination keeps the source's name."""
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        say(f"{verb}: {exc}")
        return EXIT_USAGE
    if not 1 <= len(words) <= 2:
        say(f"usage: {BUILTINS[verb].usage}")
        return EXIT_USAGE
    source, target = words[0], words[1] if len(words) == 2 else None
    cwd = shell.state.cwd or "."
    reporter = Reporter(argparse.Namespace(quiet=False, verbose=True))
    try:
        if verb == "put":
            remote = posixpath.join(cwd, target or os.path.basename(source.rstrip("/")))
            result = await transfer.put(
                shell.connection, source, remote, progress=reporter.progress(source)
            )
            reporter.done("sent", source, result)
        else:
            remote = posixpath.join(cwd, source)
            local = target or posixpath.basename(source.rstrip("/"))
            if os.path.isdir(local):
                local = os.path.join(local, posixpath.basename(source.rstrip("/")))
            result = await transfer.get(
                shell.connection, remote, local, progress=reporter.progress(source)
            )
            reporter.done("received", source, result)
    except transfer.TransferError as exc:
        reporter.clear()
        say(f"{verb}: {source}: {exc}")
        return 1
    return 0


async def _local(shell: Shell, rest: str) -> int:
    if not rest.strip():
        say("!: give a command to run on this machine, e.g. '!ls'")
        return EXIT_USAGE
    # It shares the terminal: Ctrl-C reaches it directly, and the shell's own
    # SIGINT handler ignores it while no remote command is attached.
    process = await asyncio.create_subprocess_shell(rest)
    status = await process.wait()
    return RETURNCODE_SIGNAL_BASE - status if status < 0 else status


async def _help(shell: Shell, rest: str) -> int:
    if rest:
        builtin = LOCAL if rest == "!" else BUILTINS[rest]
        print(f"{builtin.usage}\n    {builtin.summary}")
        return 0
    state = shell.state
    bash = state.shell.startswith("bash")
    which = (
        f"bash ({state.shell.removeprefix('bash ')}), the account's login shell"
        if bash
        else "/bin/sh (the account's login shell is not bash, or --sh)"
    )
    # dash, the usual /bin/sh, has no help of its own.
    own_help = " 'help NAME' shows bash's help for its own commands." if bash else ""
    print(HELP_HEADER.format(host=state.identity.host or "the server", which=which, help=own_help))
    for builtin in (*BUILTINS.values(), LOCAL):
        print(f"  {builtin.usage:<22} {builtin.summary}")
    print(HELP_FOOTER)
    return 0


def _is_builtin_name(rest: str) -> bool:
    return not rest or rest == "!" or rest in BUILTINS


def _one_word_at_most(rest: str) -> bool:
    return len(rest.split()) <= 1 and not set(rest) & set(";&|<>()`$")


HELP_HEADER = """\
rexec shell: the lines you type run in one shell on {host}, for the whole
session: {which}. What a line changes (directory, variables, functions,
aliases, options, umask) lasts, as in bash over ssh.{help} rexec's built-ins:"""

HELP_FOOTER = """
While a line runs, what you type goes to its stdin (line by line) and Ctrl-D
ends it; what the line does not read is dropped, not run at the next prompt.
Ctrl-C interrupts the line (again within a second: SIGTERM; a third time, or
three at once: the shell is replaced by a new one with the session's state). At the
prompt: Ctrl-C discards the line, Ctrl-D leaves, Ctrl-R searches the history,
Tab completes remote commands, paths and $variables. An unfinished line goes
on with '> '. A line that starts with '!' runs here, so bash's history
expansion ('!!', '!$', '^old^new') is not available: use Up or Ctrl-R.
'set -o vi' / 'set -o emacs' (in any line, or a sourced file) choose how rexec
edits lines: the remote shell keeps the option, but its own line editor reads
no terminal, so 'bind' changes nothing here. For full-screen programs use
'rexec shell --pty'."""

BUILTINS: dict[str, Builtin] = {
    builtin.name: builtin
    for builtin in (
        Builtin(
            "timeout",
            "timeout [SECONDS|off]",
            "show or set each line's time limit",
            _timeout,
            takes=_one_word_at_most,
        ),
        Builtin("put", "put LOCAL [REMOTE]", "copy a file to the server (sha256-checked)", _put),
        Builtin("get", "get REMOTE [LOCAL]", "copy a file from the server (sha256-checked)", _get),
        Builtin(
            "exit",
            "exit [N]",
            "leave with status N (default: the last line's); every job ends with the session,"
            " nohup and disown too: start one with setsid to keep it",
            _exit,
            takes=_one_word_at_most,
        ),
        Builtin(
            "logout",
            "logout [N]",
            "leave as exit does (over ssh, bash is a login shell, where logout works)",
            _exit,
            takes=_one_word_at_most,
        ),
        Builtin("help", "help [BUILTIN]", "this help", _help, takes=_is_builtin_name),
    )
}
LOCAL = Builtin("!", "!COMMAND", "run COMMAND on this machine", _local)
