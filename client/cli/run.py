"""``rexec run``: run one command on a server, as if it ran here.

Remote stdout and stderr go to local stdout and stderr as raw bytes, as they
arrive. Local stdin is forwarded (with its EOF) when it is a pipe or a file;
a terminal is not read unless ``-i`` asks for it, so an interactive
``rexec run`` never swallows typing meant for the next command (use
``rexec shell`` for interactive programs). Ctrl-C sends SIGINT to the remote
command; a second Ctrl-C within a second cancels it (SIGTERM, then SIGKILL).
With ``-t`` the command runs on a remote pseudo-terminal instead, the local
terminal in raw mode (see ``pty_session``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from ..errors import RemoteCommandError
from ..process import RemoteProcess
from ..result import RETURNCODE_SIGNAL_BASE, ExitStatus
from ..term.pty_session import run_on_pty
from ..term.relay import copy_output, forward_input, interrupts_forwarded, stop_task
from .common import (
    CliError,
    add_connection_options,
    command_exit_status,
    fail,
    open_connection,
    positive_float,
    refused,
    run_async_command,
)

#: Status when local stdout was closed by its reader (as a process killed by SIGPIPE).
EXIT_BROKEN_PIPE = RETURNCODE_SIGNAL_BASE + signal.SIGPIPE

DESCRIPTION = """\
Run a command on a rexecd server: its output appears here, its exit status
becomes rexec's. The command is either an argv after '--' (run directly, no
shell: no quoting issues) or a shell command line given with --shell.

Local stdin is sent to the command when it is a pipe or a file; a terminal is
not read (the command's stdin is then empty) unless -i is given. -n never sends
any. Ctrl-C sends SIGINT to the remote command; pressing it again within a
second cancels the command (SIGTERM, then SIGKILL after a grace).

With -t the command runs on a pseudo-terminal on the server, of this
terminal's size (kept in step when the window changes), with this terminal in
raw mode: every key goes to the command, as with 'ssh -t', for full-screen and
interactive programs. Its output then all arrives on stdout.
"""

EPILOG = """\
exit status:
  0-255     the remote command's exit code
  124       the command was ended because --timeout expired
  128+N     the command was killed by signal N (130 after Ctrl-C)
  126, 127  the command could not be executed / was not found
  141       local stdout was closed early (e.g. '| head'); the command is cancelled
  255       rexec failed: usage, address, key, connection, TLS or protocol
            error, or the connection was lost (one 'rexec: ...' line says which)

examples:
  rexec run 127.0.0.1 -- uname -a
  rexec run --timeout 60 server:7420 -- make -C /src test
  rexec run server --shell 'ls /var/log | wc -l'
  rexec run -t server -- top
  tar cf - dir | rexec run server -- tar xf - -C /tmp
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run one command on a server",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [options] HOST[:PORT] (-- COMMAND [ARG...] | --shell STRING)",
    )
    parser.add_argument(
        "address",
        metavar="HOST[:PORT]",
        help="the server (port 7420 by default; IPv6 as [::1]:PORT)",
    )
    what = parser.add_argument_group("the command")
    what.add_argument("--shell", metavar="STRING", help="run STRING with /bin/sh -c on the server")
    what.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="the server ends the command (and all it started) after this long; exit status 124",
    )
    what.add_argument(
        "--cwd", metavar="DIR", help="working directory on the server (default: its home)"
    )
    what.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        type=_env_assignment,
        metavar="NAME=VALUE",
        help="set an environment variable for the command (repeatable)",
    )
    what.add_argument(
        "-t",
        "--tty",
        action="store_true",
        help="run the command on a pseudo-terminal on the server, this terminal in raw mode",
    )
    stdin = what.add_mutually_exclusive_group()
    stdin.add_argument(
        "-n",
        "--no-stdin",
        dest="stdin",
        action="store_const",
        const="none",
        help="send no stdin: the command reads EOF at once",
    )
    stdin.add_argument(
        "-i",
        "--stdin",
        dest="stdin",
        action="store_const",
        const="always",
        help="send stdin even when it is a terminal (end it with Ctrl-D)",
    )
    add_connection_options(parser)
    parser.set_defaults(handler=main, accepts_command=True, stdin="auto")


def main(args: argparse.Namespace) -> int:
    """Run the command ``args`` describe; return rexec's exit status."""
    if (args.remote_command is None) == (args.shell is None):
        return fail("give the command after '--' (rexec run HOST -- CMD ARG...) or with --shell")
    if args.remote_command == []:
        return fail("the command after '--' is empty")
    return run_async_command(_run(args))


def _env_assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


async def _run(args: argparse.Namespace) -> int:
    command = args.remote_command if args.shell is None else args.shell
    options: dict[str, Any] = {
        "shell": args.shell is not None,
        "cwd": args.cwd,
        "env": dict(args.env),
        "timeout": args.timeout,
    }
    stdout_broke = False
    async with await open_connection(args, args.address) as connection:
        try:
            if args.tty:
                # On a pty the terminal is the command's input: read it unless -n.
                status = await run_on_pty(
                    connection, command, forward_stdin=args.stdin != "none", **options
                )
            else:
                process = await connection.start(
                    command, stdin=_forwards_stdin(args.stdin), **options
                )
                stdout_broke, status = await _relay(process)
        except RemoteCommandError as exc:
            return refused(connection.peer, exc)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if stdout_broke and not status.connection_lost:
        return EXIT_BROKEN_PIPE
    return command_exit_status(status)


def _forwards_stdin(mode: str) -> bool:
    if mode != "auto":
        return mode == "always"
    try:
        os.fstat(0)
    except OSError:
        return False  # no stdin at all
    return not os.isatty(0)


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
