"""``rexec run``: run one command on a server, as if it ran here.

The command line reads: rexec's options, HOST, then the command, verbatim:
no word after HOST is taken as one of rexec's options (``split_command``).
Several words run as an argv without a shell; a single word is a command
line for the server's ``/bin/sh``, as ssh runs it; ``--`` forces an argv and
``--shell`` a command line.

Remote stdout and stderr go to local stdout and stderr as raw bytes, as they
arrive. Local stdin is forwarded with its end, whatever it is (a terminal
too, as ssh does); ``-n`` sends none. Ctrl-C sends SIGINT to the remote
command; a second Ctrl-C within a second cancels it (SIGTERM, then SIGKILL).
With ``-t`` the command runs on a remote pseudo-terminal instead, the local
terminal in raw mode (see ``pty_session``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Collection, Sequence
from typing import Any

from ..errors import RemoteCommandError
from ..process import RemoteProcess
from ..result import ExitStatus
from ..term.relay import copy_output, forward_input, interrupts_forwarded, stop_task
from .base import add_command, server_directory
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    CliError,
    add_connection_options,
    command_exit_status,
    fail,
    open_connection,
    positive_float,
    refused,
    run_async_command,
)
from .remote_command import RemoteCommand, as_typed, refusal_hint

DESCRIPTION = """\
Run a command on a rexecd server: its output appears here, its exit status
becomes rexec's, as with 'ssh HOST COMMAND'.

  rexec run HOST ls -l '/tmp/a b'    several words: an argv, run without a shell;
                                     each word reaches the program as typed
  rexec run HOST 'ls /tmp | wc -l'   one word: a command line for the server's
                                     /bin/sh, as ssh runs it
  rexec run HOST -- PROGRAM [ARG...] an argv, even of one word
  rexec run --shell STRING HOST      a command line, whatever it looks like

rexec's options go before HOST; everything after HOST is the command,
verbatim, never read as rexec's options: 'rexec run HOST ls -l'
passes -l to ls, and 'rexec run HOST -la' runs a program named -la.

Local stdin is sent to the command with its end, as ssh does, a terminal too
(type Ctrl-D to end it); -n sends none (the command reads EOF at once). Ctrl-C
sends SIGINT to the remote command; pressing it again within a second cancels
the command (SIGTERM, then SIGKILL after a grace).

With -t the command runs on a pseudo-terminal on the server, of this
terminal's size (kept in step when the window changes), with this terminal in
raw mode: every key goes to the command, as with 'ssh -t', for full-screen and
interactive programs. Its output then all arrives on stdout.
"""

EPILOG = """\
exit status:
  0-255     the remote command's exit code
  124       the command was ended because --timeout (or the server's own time
            limit, with a line saying so) expired
  128+N     the command was killed by signal N (130 after Ctrl-C; 143 when
            the server shut down under it, with a line saying so)
  126, 127  the command could not be executed / was not found
  141       local stdout was closed early (e.g. '| head'); the command is cancelled
  255       rexec failed: usage, address, key, connection, TLS or protocol
            error, the connection was lost, stdout was closed (>&-), the
            server's output limit cut the output (output_capped), or the
            server refused the command: command.denied, env.forbidden,
            cwd.invalid, busy (one 'rexec: ...' line says which)

examples:
  rexec run 127.0.0.1 uname -a
  rexec run --timeout 60 server:7420 make -C /src test
  rexec run server 'ls /var/log | wc -l'
  rexec run -t server top
  tar cf - dir | rexec run server tar xf - -C /tmp
  rexec run --tls server.example.org uptime
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "run",
        "run one command on a server",
        DESCRIPTION,
        EPILOG,
        usage="%(prog)s [options] HOST[:PORT] (COMMAND [ARG...] | -- PROGRAM [ARG...])\n"
        "       %(prog)s [options] --shell STRING HOST[:PORT]",
        # Abbreviations would make '--time 5' an option whose value the
        # command-line split below can't know about.
        allow_abbrev=False,
    )
    parser.add_argument(
        "address",
        metavar="HOST[:PORT]",
        help="the server (port 7420 by default; IPv6 as [::1]:PORT)",
    )
    what = parser.add_argument_group("the command")
    actions = [
        what.add_argument(
            "--shell", metavar="STRING", help="run STRING with /bin/sh -c on the server"
        ),
        what.add_argument(
            "--timeout",
            type=positive_float,
            metavar="SECONDS",
            help="the server ends the command (and all it started) after this long; "
            "exit status 124",
        ),
        what.add_argument(
            "--cwd",
            type=server_directory,
            metavar="DIR",
            help="working directory on the server (default: its home)",
        ),
        what.add_argument(
            "-e",
            "--env",
            action="append",
            default=[],
            type=_env_assignment,
            metavar="NAME=VALUE",
            help="set an environment variable for the command (repeatable)",
        ),
        what.add_argument(
            "-t",
            "--tty",
            action="count",
            default=0,
            help="run the command on a pseudo-terminal on the server, this terminal in raw mode"
            " (as ssh: not when stdin is no terminal, unless given twice, -tt)",
        ),
        what.add_argument(
            "-n",
            "--no-stdin",
            action="store_true",
            help="send no stdin: the command reads EOF at once",
        ),
        *add_connection_options(parser),
    ]
    parser.set_defaults(
        handler=main,
        value_options=frozenset(
            option for action in actions if action.nargs != 0 for option in action.option_strings
        ),
    )


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``rexec run``'s arguments (those after ``run``)."""
    own, words, forced_argv = split_command(argv, parser.get_default("value_options"))
    args = parser.parse_args(own)
    args.command = _remote_command(parser, args.shell, words, forced_argv)
    _check_text(parser, args)
    return args


def split_command(
    argv: Sequence[str], value_options: Collection[str]
) -> tuple[list[str], list[str], bool]:
    """Split ``argv`` at HOST: rexec's options and HOST, then the command,
    verbatim: no word after HOST is read as rexec's, however it looks
    (``rexec run HOST -la`` runs ``-la``). A ``--`` right after HOST makes
    the rest an argv even of one word; so does a ``--`` before HOST, which
    ends rexec's options: HOST follows it, then the argv.

    ``value_options`` are the option strings that take a value (``--timeout``,
    ``-e``): their value is never mistaken for HOST.

    Returns:
        rexec's own arguments (HOST included), the command's words, and
        whether they followed ``--`` (an argv, whatever it looks like).
    """
    own: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if word == "--":
            # HOST is the next word, however it looks.
            own.extend(argv[index : index + 1])
            return own, list(argv[index + 1 :]), True
        own.append(word)
        if not word.startswith("-") or word == "-":
            break  # HOST
        if _takes_value(word, value_options) and index < len(argv):
            own.append(argv[index])
            index += 1
    words = list(argv[index:])
    if words[:1] == ["--"]:
        return own, words[1:], True
    return own, words, False


def _takes_value(word: str, value_options: Collection[str]) -> bool:
    """Whether option ``word`` consumes the next argument."""
    if word.startswith("--"):
        return "=" not in word and word in value_options
    # A cluster of short options (-nt); a value-taking one takes the rest of
    # the word as its value (-eA=1), or else the next argument.
    for position, letter in enumerate(word[1:], start=1):
        if f"-{letter}" in value_options:
            return position == len(word) - 1
    return False


def _remote_command(
    parser: argparse.ArgumentParser, shell: str | None, words: list[str], forced_argv: bool
) -> RemoteCommand:
    if shell is not None:
        if words or forced_argv:
            parser.error("give the command either with --shell or after HOST, not both")
        return RemoteCommand(shell, shell=True)
    if forced_argv:
        if not words:
            parser.error("the command after '--' is empty")
        if not words[0]:
            parser.error("the program name (the first word after '--') is empty")
        return RemoteCommand(words, shell=False)
    if not words:
        parser.error(
            "give a command: rexec run HOST COMMAND [ARG...]; for an interactive shell: "
            "rexec shell HOST"
        )
    if len(words) == 1:
        if not words[0].strip():
            parser.error("the command is empty")
        return RemoteCommand(words[0], shell=True, implicit=True)
    return RemoteCommand(words, shell=False, implicit=True)


def _check_text(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject, as a usage error, a word that is not UTF-8 text: the protocol
    carries commands, directories and the environment as text."""
    words = args.command.words
    texts = {
        "the command": [words] if isinstance(words, str) else words,
        "--cwd": [args.cwd] if args.cwd is not None else [],
        "-e": [f"{name}={value}" for name, value in args.env],
    }
    for where, items in texts.items():
        for text in items:
            try:
                text.encode()
            except UnicodeEncodeError:
                raw = text.encode(errors="surrogateescape")
                parser.error(f"{where}: {raw!r} is not UTF-8 text, which rexec carries")


def _env_assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(args: argparse.Namespace) -> int:
    """Run the command ``args`` describe; return rexec's exit status."""
    return run_async_command(_run(args))


async def _run(args: argparse.Namespace) -> int:
    command: RemoteCommand = args.command
    options: dict[str, Any] = {
        "shell": command.shell,
        "cwd": args.cwd,
        "env": dict(args.env),
        "timeout": args.timeout,
    }
    stdout_broke = False
    on_pty = args.tty > 1 or (args.tty == 1 and sys.stdin.isatty())
    if args.tty and not on_pty:
        # ssh's rule: a pty would echo piped input back into the output.
        print(
            "rexec: no pseudo-terminal, as stdin is not a terminal (-tt forces one)",
            file=sys.stderr,
        )
    async with await open_connection(args, args.address) as connection:
        try:
            if on_pty:
                # Imported here: only -t needs the terminal's modes and window size.
                from ..term.pty_session import run_on_pty

                # On a pty the terminal is the command's input: read it unless -n.
                status = await run_on_pty(
                    connection, command.words, forward_stdin=not args.no_stdin, **options
                )
                # A pty's Ctrl-C is a byte for the command, never a cancel.
                cancelled_here = False
            else:
                process = await connection.start(
                    command.words, stdin=_forwards_stdin(args.no_stdin), **options
                )
                stdout_broke, status = await _relay(process)
                cancelled_here = process.cancel_requested
        except RemoteCommandError as exc:
            return refused(
                connection.peer, exc, hint=refusal_hint(command, exc, as_typed(args.address))
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if stdout_broke and not status.connection_lost:
        return EXIT_BROKEN_PIPE
    note = _ending_note(status, cancelled_here, args.timeout)
    if note:
        fail(f"{connection.peer}: {note}")
    if status.output_capped:
        return EXIT_FAILURE  # what arrived is not all the command wrote
    return command_exit_status(status)


def _ending_note(status: ExitStatus, cancelled_here: bool, timeout: float | None) -> str | None:
    """One line on what the server did to the command that its exit status
    alone does not say, as the ``exit`` record says it (None: nothing)."""
    if status.output_capped:
        return f"{status.capped_note} (output_capped)"
    if status.timed_out and (timeout is None or (status.duration or 0) < timeout):
        # Not our --timeout: the server's (or the key's) limit, which clamps it.
        ran = f" after {status.duration:.3g} s" if status.duration is not None else ""
        return f"the server's time limit ended the command{ran} (timed_out)"
    if status.cancelled and not cancelled_here:
        # Only a server shutting down cancels a command nobody cancelled.
        how = f" ({status.signal_name})" if status.signal_name else ""
        return f"the server is shutting down: it ended the command{how} (server.shutting_down)"
    if status.pipes_held:
        return (
            "the command exited, but something it left running in the background kept its "
            "output open, so the server ended it (pipes_held); to leave a job running, "
            "redirect its output: 'JOB >/dev/null 2>&1 &'"
        )
    return None


def _forwards_stdin(no_stdin: bool) -> bool:
    if no_stdin:
        return False
    try:
        os.fstat(0)
    except OSError:
        return False  # no stdin at all
    return True


async def _relay(process: RemoteProcess) -> tuple[bool, ExitStatus]:
    """Copy output out and stdin in until the command ends; return whether
    local stdout was closed by its reader, and how the command ended."""
    feeder = asyncio.create_task(forward_input(process.stdin)) if process.stdin else None
    with interrupts_forwarded(process):
        stdout_broke, _ = await asyncio.gather(
            copy_output(process.stdout, sys.stdout.buffer, on_broken=process.cancel),
            copy_output(process.stderr, sys.stderr.buffer, on_broken=lambda: None),
        )
        status = await process.wait()
    # The command has ended; what it did not read is not sent.
    await stop_task(feeder)
    return stdout_broke, status
