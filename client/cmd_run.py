"""``rexec run``: run one command on a server, as if it ran here.

Remote stdout and stderr go to local stdout and stderr as raw bytes, as they
arrive. Local stdin is forwarded (with its EOF) when it is a pipe or a file;
a terminal is not read unless ``-i`` asks for it, so an interactive
``rexec run`` never swallows typing meant for the next command (use
``rexec shell`` for interactive programs). Ctrl-C sends SIGINT to the remote
command; a second Ctrl-C within a second cancels it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import Any, BinaryIO

from .cli_common import (
    EXIT_FAILURE,
    CliError,
    add_connection_options,
    fail,
    open_connection,
    positive_float,
    run_async_command,
)
from .errors import RemoteCommandError, RexecConnectionError
from .local_io import read_chunks
from .process import RemoteProcess
from .result import RETURNCODE_SIGNAL_BASE
from .stdin import StdinWriter
from .streams import OutputReader

#: Seconds within which a second Ctrl-C cancels the command.
DOUBLE_INTERRUPT = 1.0
#: Status when local stdout was closed by its reader (as a process killed by SIGPIPE).
EXIT_BROKEN_PIPE = RETURNCODE_SIGNAL_BASE + signal.SIGPIPE
#: Statuses for commands the server could not start, as shells use them.
EXIT_BY_REFUSAL = {"spawn.not_found": 127, "spawn.permission_denied": 126}

DESCRIPTION = """\
Run a command on a rexecd server: its output appears here, its exit status
becomes rexec's. The command is either an argv after '--' (run directly, no
shell: no quoting issues) or a shell command line given with --shell.

Local stdin is sent to the command when it is a pipe or a file; a terminal is
not read (the command's stdin is then empty) unless -i is given. -n never sends
any. Ctrl-C sends SIGINT to the remote command; pressing it again within a
second cancels the command (SIGTERM, then SIGKILL after a grace).
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
    forward_stdin = _forwards_stdin(args.stdin)
    async with await open_connection(args, args.address) as connection:
        try:
            process = await connection.start(
                args.remote_command if args.shell is None else args.shell,
                shell=args.shell is not None,
                cwd=args.cwd,
                env=dict(args.env),
                stdin=forward_stdin,
                timeout=args.timeout,
            )
        except RemoteCommandError as exc:
            return fail(f"{connection.peer}: {exc}", EXIT_BY_REFUSAL.get(exc.code, EXIT_FAILURE))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        with _interrupts_forwarded(process):
            stdout_broke = await _relay(process)
        status = await process.wait()
    if status.connection_lost:
        return fail(status.connection_error or "connection lost")
    return EXIT_BROKEN_PIPE if stdout_broke else status.returncode


def _forwards_stdin(mode: str) -> bool:
    if mode != "auto":
        return mode == "always"
    try:
        os.fstat(0)
    except OSError:
        return False  # no stdin at all
    return not os.isatty(0)


async def _relay(process: RemoteProcess) -> bool:
    """Copy output out and stdin in until the command ends; return whether
    local stdout was closed by its reader."""
    feeder = asyncio.create_task(_forward_input(process.stdin)) if process.stdin else None
    stdout_broke, _ = await asyncio.gather(
        _copy_output(process.stdout, sys.stdout.buffer, on_broken=process.cancel),
        _copy_output(process.stderr, sys.stderr.buffer, on_broken=lambda: None),
    )
    await process.wait()
    if feeder is not None:
        # The command has ended; what it did not read is not sent.
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
    return stdout_broke


async def _copy_output(reader: OutputReader, file: BinaryIO, on_broken: Any) -> bool:
    """Copy ``reader`` to ``file``; when the local reader of ``file`` goes
    away, call ``on_broken`` and discard the rest. Returns whether it broke."""
    try:
        await reader.copy_to(file)
        return False
    except BrokenPipeError:
        # Point the descriptor at /dev/null so that the flush at exit does not
        # report the same broken pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, file.fileno())
        os.close(devnull)
        on_broken()
        while await reader.read(2**20):
            pass  # keep the connection flowing until the command ends
        return True


async def _forward_input(stdin: StdinWriter) -> None:
    try:
        async for chunk in read_chunks(sys.stdin.fileno()):
            stdin.write(chunk)
            await stdin.drain()
        stdin.close()
    except (BrokenPipeError, RexecConnectionError):
        pass  # the command or the connection ended; its status says how


@contextlib.contextmanager
def _interrupts_forwarded(process: RemoteProcess) -> Any:
    """While active, Ctrl-C sends SIGINT to the remote command, and a second
    one within ``DOUBLE_INTERRUPT`` seconds cancels it."""
    loop = asyncio.get_running_loop()
    last: list[float] = []

    def on_interrupt() -> None:
        now = time.monotonic()
        with contextlib.suppress(RexecConnectionError):
            if last and now - last[-1] <= DOUBLE_INTERRUPT:
                process.cancel()
            else:
                process.send_signal("SIGINT")
        last.append(now)

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
