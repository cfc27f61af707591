"""What every ``rexec`` subcommand shares and costs nothing to import: the
argument parser that exits 255, the one-line error report, exit statuses.

Exit statuses of the ``rexec`` program (subcommands add their own meanings
below 255):

* 255: rexec itself failed: bad usage or address, key file, connection,
  authentication, TLS or protocol error, or the connection was lost.
* 141: our standard output was closed by its reader (``| head``), as for a
  program killed by SIGPIPE.
* 130: interrupted (Ctrl-C) before a command was running.

A standard stream closed by the caller (``>&-``) is settled before anything
else (``guard_standard_streams``): a closed stdin or stderr is /dev/null, as
ssh makes it; a closed stdout is a usage failure (255, nothing run), since
all the output would be lost.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
from typing import Any, NoReturn

EXIT_FAILURE = 255
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


class CliError(Exception):
    """A failure to report as ``rexec: MESSAGE`` (one line) with ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is in --help) and
    exits 255, so that statuses 1–254 stay the remote command's."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_FAILURE,
            f"rexec: {message}{_habit_hint(self.prog, message)} (see '{self.prog} --help')\n",
        )


#: ssh and scp options a newcomer types, and where rexec has what they meant.
_SSH_OPTIONS = {
    "-p": "the port goes with the host: HOST:PORT",
    "-l": "rexec has no login name: commands run as the server's account",
}


def _habit_hint(prog: str, message: str) -> str:
    """A hint for a usage error that an ssh or scp habit makes, or ""."""
    words = message.removeprefix("unrecognized arguments: ").split()
    for option, hint in _SSH_OPTIONS.items():
        if message.startswith("unrecognized arguments") and option in words:
            return f"; {option}: {hint}"
    if prog.endswith((" put", " get")) and "arguments are required" in message:
        verb = prog.rsplit(" ", 1)[1]
        operands = "LOCAL REMOTE" if verb == "put" else "REMOTE LOCAL"
        return f"; it is 'rexec {verb} HOST {operands}', not scp's HOST:PATH"
    return ""


def add_command(
    subparsers: Any, name: str, help: str, description: str, epilog: str, **options: Any
) -> argparse.ArgumentParser:
    """The parser of the subcommand ``name``: ``help`` is its line in
    ``rexec --help``; its ``description`` and ``epilog`` (the examples) are
    shown as written. ``options`` go to argparse as they are (``usage`` …)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **options,
    )
    return parser


def positive_float(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def seconds_or_never(text: str) -> float | None:
    """argparse type: a number of seconds > 0, or 0 for no limit (None), as
    rsync's ``--timeout=0`` and rexecd's own timeouts."""
    if text.strip() in ("0", "0.0"):
        return None
    return positive_float(text)


def server_directory(text: str) -> str:
    """argparse type: a directory on the server (``--cwd``), not empty."""
    if not text:
        raise argparse.ArgumentTypeError("expected a directory on the server, got ''")
    return text


def fail(message: str, status: int = EXIT_FAILURE) -> int:
    """Print ``rexec: MESSAGE`` on stderr, as one line (``one_line``), and
    return ``status``."""
    print(f"rexec: {one_line(message)}", file=sys.stderr, flush=True)
    return status


#: Control characters (C0, DEL, C1): a newline in a file name would split a
#: message, an escape would drive the terminal.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def one_line(text: str) -> str:
    """``text`` with its control characters written as ``ls -b`` writes them
    (``\\n``, ``\\t``, ``\\x1b``), so that a name from a file system or a
    server prints as one inert line."""
    return _CONTROLS.sub(
        lambda match: _NAMED_ESCAPES.get(match[0], f"\\x{ord(match[0]):02x}"), text
    )


def discard_stdout() -> None:
    """Point standard output at /dev/null after its reader went away, so that
    nothing written later (the interpreter's final flush included) reports
    the same broken pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def guard_standard_streams() -> bool:
    """Put /dev/null on any of descriptors 0-2 that is closed, as ssh's
    sanitise_stdfd does, so that no socket or file opened later lands on
    one of them; give Python's ``sys`` streams objects again for those.

    Returns whether standard output was closed (the caller then fails: its
    output would go nowhere).
    """
    closed = [fd for fd in (0, 1, 2) if not _is_open(fd)]
    for fd in closed:
        devnull = os.open(os.devnull, os.O_RDWR)
        if devnull != fd:
            os.dup2(devnull, fd)
            os.close(devnull)
    if 0 in closed:
        sys.stdin = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    if 1 in closed:
        sys.stdout = open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
    if 2 in closed:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    return 1 in closed


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        if exc.errno == errno.EBADF:
            return False
        raise
    return True
