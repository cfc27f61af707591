"""The built-in commands of ``rexec shell``.

A line is a built-in when its first word names one and the rest is what the
built-in takes; anything else runs on the server. So ``cd``, ``export`` and
``unset`` inside a compound line (``cd /tmp && make``) run remotely and last
for that line only (the shell says so), and ``timeout 5 make`` or
``env FOO=1 cmd`` are the remote programs of those names.

``cd``, ``export`` and ``unset`` are checked by the server before the session
changes: the remote shell resolves the directory or expands the values in the
session, and its error, if any, is shown and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import posixpath
import re
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol

from .. import transfer
from ..cli.common import positive_float
from ..cli.transfers import Reporter
from ..connection import ClientConnection
from ..errors import RemoteCommandError
from ..result import RETURNCODE_SIGNAL_BASE, CompletedProcess
from .remote_line import capture, say, stderr_painter
from .state import SessionState

#: Status of a built-in used wrongly, as shells use it.
EXIT_USAGE = 2
#: A POSIX shell variable name.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Tokens of a shell line that make it more than one simple command. Not
#: parentheses: ``export X=$(cmd)`` is still one simple command.
_OPERATOR_CHARS = set(";&|<>")


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
    #: Most words the rest of the line may have (None: any) …
    max_words: int | None = None
    #: … and whether it must be one simple command (no ';', '&&', '|' …).
    simple_only: bool = False


def find_builtin(line: str) -> tuple[Builtin, str] | None:
    """The built-in ``line`` calls and the rest of the line, or None when the
    line runs on the server (see the module docstring)."""
    if line.startswith("!"):
        return LOCAL, line[1:]
    word, *others = line.split(None, 1)
    rest = others[0] if others else ""
    builtin = BUILTINS.get(word)
    if builtin is None:
        return None
    if builtin.simple_only and not is_simple(rest):
        say(f"note: '{word}' in a compound line lasts for that line only")
        return None
    if builtin.max_words is not None and len(rest.split()) > builtin.max_words:
        return None
    return builtin, rest.strip()


def is_simple(text: str) -> bool:
    """True when ``text`` has no unquoted shell operator or newline."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return True  # unbalanced quotes: the built-in reports it
    return "\n" not in text and not any(set(token) <= _OPERATOR_CHARS for token in tokens)


# --- output helpers -----------------------------------------------------------


def show_remote_error(result: CompletedProcess, what: str) -> int:
    """Show a failed query's stderr (as a command's), or a line if it had
    none; return its status."""
    if result.stderr:
        paint = stderr_painter()
        sys.stderr.buffer.write(paint(result.stderr) if paint else result.stderr)
        sys.stderr.buffer.flush()
    else:
        say(f"{what}: {result.describe()}")
    return result.returncode


def _nul_fields(data: bytes | None, what: str) -> list[str] | None:
    """NUL-terminated UTF-8 fields of a query's output; None (after saying
    so) when one is not UTF-8, which the protocol's JSON can't carry."""
    try:
        return [field.decode() for field in (data or b"").split(b"\0")[:-1]]
    except UnicodeDecodeError:
        say(f"{what}: the result is not UTF-8, which rexec can't carry as a name or value")
        return None


def _bad_names(names: list[str], what: str) -> bool:
    for name in names:
        if not _NAME.match(name):
            say(f"{what}: not a valid variable name: {name!r}")
            return True
    return False


# --- the built-ins ----------------------------------------------------------------


async def _cd(shell: Shell, rest: str) -> int:
    state = shell.state
    target = rest
    if rest == "-":
        if state.oldpwd is None:
            say("cd: no previous directory")
            return 1
        target = shlex.quote(state.oldpwd)
    script = f"cd {target} >/dev/null && printf '%s\\0' \"$(pwd -P)\""
    try:
        result = await capture(shell.connection, state, script)
    except RemoteCommandError as exc:
        if exc.code != "cwd.invalid" or not target.startswith(("/", "~")):
            say(f"cd: {exc}")
            return 1
        # The session's directory is gone; an absolute target is still fine.
        result = await capture(shell.connection, dataclasses.replace(state, cwd=None), script)
    if result.returncode != 0:
        return show_remote_error(result, "cd")
    fields = _nul_fields(result.stdout, "cd")
    if not fields:
        return 1
    state.oldpwd, state.cwd = state.cwd, fields[-1]
    if rest == "-":
        print(state.cwd, flush=True)
    return 0


async def _export(shell: Shell, rest: str) -> int:
    if not rest:
        return await _env(shell, rest)
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        say(f"export: {exc}")
        return EXIT_USAGE
    # The words that look like NAME or NAME=…; others are parts of values
    # (``X=$(cmd arg)``) or mistakes the server's ``export`` reports.
    names = [name for word in words if _NAME.match(name := word.partition("=")[0])]
    state = shell.state
    # The server's shell assigns (expanding $VARS, ~, $(...) in the session)
    # and prints each name's resulting state: "set" or "", then its value.
    probes = " ".join(f'"${{{name}+set}}" "${{{name}-}}"' for name in names)
    result = await capture(
        shell.connection, state, f"export {rest} >/dev/null || exit\nprintf '%s\\0' {probes}"
    )
    if result.returncode != 0:
        return show_remote_error(result, "export")
    fields = _nul_fields(result.stdout, "export")
    if fields is None:
        return 1
    values = {
        name: value
        for name, is_set, value in zip(names, fields[0::2], fields[1::2], strict=False)
        if is_set
    }
    if any(name not in state.env for name in values):
        # Let the server's environment policy judge the new names now rather
        # than refuse every later line (env.forbidden for LD_PRELOAD, …).
        try:
            await capture(shell.connection, state, "true", env={**state.env, **values})
        except RemoteCommandError as exc:
            say(f"export: {exc}")
            return 1
    for name, value in values.items():
        state.set_variable(name, value)
    return 0


async def _unset(shell: Shell, rest: str) -> int:
    names = rest.split()
    if not names:
        say("unset: name the variables to unset")
        return EXIT_USAGE
    if _bad_names(names, "unset"):
        return EXIT_USAGE
    state = shell.state
    # Without the session's values: is the name still there, from the
    # server's base environment? Then it must be hidden on every line.
    env = {name: value for name, value in state.env.items() if name not in names}
    probes = " ".join(f'"${{{name}+set}}"' for name in names)
    script = f"printf '%s\\0' {probes}\nunset -v {' '.join(names)}"
    result = await capture(shell.connection, state, script, env=env)
    if result.returncode != 0:
        return show_remote_error(result, "unset")
    fields = _nul_fields(result.stdout, "unset") or []
    for name, in_base in zip(names, fields, strict=False):
        if in_base:
            state.hide(name)
        else:
            state.set_variable(name, None)
    return 0


async def _env(shell: Shell, rest: str) -> int:
    state = shell.state
    if not state.env and not state.unset:
        print("no session variables: lines get the server's environment as it is")
    for name, value in sorted(state.env.items()):
        print(f"export {name}={shlex.quote(value)}")
    for name in sorted(state.unset):
        print(f"unset {name}")
    return 0


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
            result = await transfer.put(shell.connection, source, remote, progress=reporter.progress(source))
            reporter.done("sent", source, result)
        else:
            remote = posixpath.join(cwd, source)
            local = target or posixpath.basename(source.rstrip("/"))
            if os.path.isdir(local):
                local = os.path.join(local, posixpath.basename(source.rstrip("/")))
            result = await transfer.get(shell.connection, remote, local, progress=reporter.progress(source))
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
        builtin = BUILTINS.get(rest.lstrip("!")) if rest != "!" else LOCAL
        if builtin is None:
            say(f"help: no built-in named {rest!r}; it would run on the server")
            return 1
        print(f"{builtin.usage}\n    {builtin.summary}")
        return 0
    host = shell.state.identity.host or "the server"
    print(HELP_HEADER.format(host=host))
    for builtin in (*BUILTINS.values(), LOCAL):
        print(f"  {builtin.usage:<22} {builtin.summary}")
    print(HELP_FOOTER)
    return 0


HELP_HEADER = """\
rexec shell: each line runs on {host} with /bin/sh -c, in the session's
directory and variables. Built-ins:"""

HELP_FOOTER = """
While a command runs, what you type goes to its stdin (line by line) and
Ctrl-D ends it; Ctrl-C sends it SIGINT, and a second Ctrl-C within a second
cancels it. At the prompt: Ctrl-R searches the history, Tab completes remote
paths, Ctrl-D leaves. For full-screen programs use 'rexec shell --pty'."""

BUILTINS: dict[str, Builtin] = {
    builtin.name: builtin
    for builtin in (
        Builtin(
            "cd",
            "cd [DIR]",
            "change the session's directory ('cd -': the previous one)",
            _cd,
            simple_only=True,
        ),
        Builtin(
            "export",
            "export NAME=VALUE...",
            "set variables for the following lines",
            _export,
            simple_only=True,
        ),
        Builtin(
            "unset",
            "unset NAME...",
            "remove variables for the following lines",
            _unset,
            simple_only=True,
        ),
        Builtin("env", "env", "show the variables the session sets or hides", _env, max_words=0),
        Builtin(
            "timeout",
            "timeout [SECONDS|off]",
            "show or set each line's time limit",
            _timeout,
            max_words=1,
        ),
        Builtin("put", "put LOCAL [REMOTE]", "copy a file to the server (sha256-checked)", _put),
        Builtin("get", "get REMOTE [LOCAL]", "copy a file from the server (sha256-checked)", _get),
        Builtin("exit", "exit [N]", "leave with status N (default: the last line's)", _exit),
        Builtin("help", "help [BUILTIN]", "this help", _help),
    )
}
LOCAL = Builtin("!", "!COMMAND", "run COMMAND on this machine", _local)
