"""The emulated servers' command backend: a handful of commands answered
without forking, so that one process can play 10,000 servers.

``plan(run, name)`` turns a ``run`` request into a ``Plan`` (what to print,
how long to take, how to end) or a ``Refusal`` (the command-scoped error
rexecd would send). The commands, as argv or as a simple shell string:

=======================  ==========================================================
``true`` / ``false``     exit 0 / exit 1 (the failing command)
``hostname``             the endpoint's own name and a newline
``echo [-n] ARGS``       the arguments, joined by spaces (and a newline unless -n)
``sleep N``              exit 0 after N seconds (the slow command; a timeout,
                         cancel or signal ends it as they end a real ``sleep``)
``exit N``               exit N (a shell string only, as in ``sh -c 'exit 3'``)
``head -c N /dev/zero``  N zero bytes on stdout, under the connection's backpressure
``drop-connection``      the endpoint drops the connection (a server that dies)
=======================  ==========================================================

Anything else behaves as on a real server without that program: an argv is
refused with ``spawn.not_found``; a shell string exits 127 with dash's
``/bin/sh: 1: NAME: not found`` on stderr. Shell syntax beyond a simple
command (pipes, redirections, variables, ``;``) exits 2 with a line saying the
emulator does not run it: the emulator is for fleets, not for shells.
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from rexec.protocol import ErrorCode, Run

#: Characters that make a shell do more than split words, outside quotes and
#: inside double quotes (where only expansions and escapes still act).
_UNQUOTED_SYNTAX = frozenset("|&;<>()$`\\*?[]{}~\n#")
_DOUBLE_QUOTED_SYNTAX = frozenset("$`\\")
_ASSIGNMENT = re.compile(r"\s*[A-Za-z_]\w*=")
#: The largest ``head -c`` the emulator streams (it is a benchmark, not a disk).
MAX_ZEROS = 1 << 30
#: ``sleep`` longer than this is refused as a typo rather than held for a day.
MAX_SLEEP = 3600.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """What an accepted command does: print ``stdout``/``stderr`` (and
    ``zeros`` zero bytes), take ``seconds``, then exit with ``exit_code``;
    or, with ``drop``, take the connection down instead."""

    stdout: bytes = b""
    stderr: bytes = b""
    zeros: int = 0
    seconds: float = 0.0
    exit_code: int = 0
    drop: bool = False


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A command rexecd would refuse, as the command-scoped error it sends."""

    code: ErrorCode
    message: str


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < float("inf") else None


def _needs_a_shell(text: str) -> bool:
    """True when ``text`` is more than words and quotes: expansions,
    redirections, lists, globs or an assignment."""
    if _ASSIGNMENT.match(text):
        return True
    quote = ""
    for char in text:
        if quote == "'":
            quote = "" if char == "'" else quote
        elif quote == '"':
            if char in _DOUBLE_QUOTED_SYNTAX:
                return True
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char in _UNQUOTED_SYNTAX:
            return True
    return False


def _shell_failure(status: int, message: str) -> Plan:
    return Plan(stderr=f"/bin/sh: 1: {message}\n".encode(), exit_code=status)


def plan(run: Run, name: str) -> Plan | Refusal:
    """What the emulated server ``name`` does with ``run``."""
    if run.pty is not None:
        return Refusal(ErrorCode.PTY_FAILED, "the fleet emulator has no terminals")
    if run.shell is not None:
        if _needs_a_shell(run.shell):
            return Plan(stderr=b"fleet: the emulator runs simple commands only\n", exit_code=2)
        try:
            argv = shlex.split(run.shell)
        except ValueError:
            return _shell_failure(2, "Syntax error: Unterminated quoted string")
        if not argv:
            return Plan()
        return _command(argv, name, shell=True)
    assert run.argv is not None
    return _command(list(run.argv), name, shell=False)


def _command(argv: list[str], name: str, *, shell: bool) -> Plan | Refusal:
    program, args = argv[0], argv[1:]
    if program == "true":
        return Plan()
    if program == "false":
        return Plan(exit_code=1)
    if program == "hostname" and not args:
        return Plan(stdout=f"{name}\n".encode())
    if program == "echo":
        newline = b"\n"
        if args[:1] == ["-n"]:
            args, newline = args[1:], b""
        return Plan(stdout=" ".join(args).encode() + newline)
    if program == "sleep" and len(args) == 1:
        seconds = _number(args[0])
        if seconds is None or seconds > MAX_SLEEP:
            return Plan(stderr=f"sleep: invalid time interval '{args[0]}'\n".encode(), exit_code=1)
        return Plan(seconds=seconds)
    if program == "exit" and shell and len(args) <= 1:
        code = int(args[0]) if args and args[0].isdigit() else 0
        return Plan(exit_code=code % 256)
    if program == "head" and len(args) == 3 and args[0] == "-c" and args[2] == "/dev/zero":
        count = _number(args[1])
        if count is not None and count == int(count) and count <= MAX_ZEROS:
            return Plan(zeros=int(count))
    if program == "drop-connection" and not args:
        return Plan(drop=True)
    if shell:
        return _shell_failure(127, f"{program}: not found")
    return Refusal(ErrorCode.SPAWN_NOT_FOUND, f"no such program ({program})")
