"""What ``rexec run`` was asked to run, and what to say when the server
refuses it for its form (a shell string for a key that runs only programs, a
shell line given as a program's name, a directory outside the key's roots):
the hint names the way that works, with the options as they were typed."""

from __future__ import annotations

import dataclasses
import shlex
import sys

from ..errors import RemoteCommandError
from ..refusal_kinds import CWD_HINT, no_shell_strings, outside_roots
from .common import SHELL_SYNTAX, is_command_line


@dataclasses.dataclass(frozen=True)
class RemoteCommand:
    """What to run: an argv, or a command line for the server's shell."""

    words: str | list[str]
    shell: bool
    #: The form was chosen by the number of words (not by '--' or --shell).
    implicit: bool = False


def as_typed(address: str) -> str:
    """``run``, the options given before HOST, and HOST, as typed (so that a
    hint pasted back runs with the same key file, port, ...)."""
    words = sys.argv[1:]
    if address in words:
        words = words[: words.index(address) + 1]
    else:
        words = ["run", address]
    return shlex.join(words)


def refusal_hint(command: RemoteCommand, refusal: RemoteCommandError, run: str) -> str | None:
    """What to do instead, when a refusal comes from the form of the command
    (``run``: ``run [OPTIONS] HOST`` as typed)."""
    code = refusal.code
    if outside_roots(code, str(refusal)):
        return CWD_HINT
    if isinstance(command.words, list):
        program = command.words[0]
        if code == "spawn.not_found" and program.startswith("-"):
            return (
                f"{program!r} came after HOST, so it was run as the command: rexec's options "
                "go before HOST (see 'rexec run --help')"
            )
        if code == "spawn.not_found" and is_command_line(program):
            line = shlex.quote(" ".join(command.words))
            how = "as one word" if command.implicit else "as one word, without '--'"
            return (
                f"{program!r} was run as a program name, without a shell; to run a shell "
                f"command line, give it {how}: rexec {run} {line}"
            )
    elif (
        no_shell_strings(code, str(refusal))
        and command.implicit
        and not SHELL_SYNTAX.search(command.words)
    ):
        return f"to run it as a program, without a shell: rexec {run} -- {command.words}"
    return None
