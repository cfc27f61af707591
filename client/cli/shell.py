"""``rexec shell``: an interactive shell on a server.

Line mode (the default) is a local REPL (``repl``) that runs each line on the
server; ``--pty`` runs the remote user's login shell on a pseudo-terminal
instead (``pty_session``), for full-screen programs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import RemoteCommandError
from ..refusal_kinds import CWD_HINT, outside_roots
from ..shell.history_file import history_path
from ..term.pty_session import LOGIN_SHELL, run_on_pty
from .base import add_command, server_directory
from .common import (
    add_connection_options,
    command_exit_status,
    open_connection,
    refused,
    run_async_command,
)

#: Keepalive interval of the shell unless --keepalive says otherwise: an idle
#: shell is where a dead server or network goes unnoticed longest.
SHELL_KEEPALIVE = 5.0

DESCRIPTION = """\
An interactive shell on a rexecd server.

The lines you type run in one remote shell that lasts for the session: the
account's login shell where it is bash (it reads the login start-up files),
else /bin/sh. Whatever a line changes lasts for the next one, as in bash over
ssh: the directory (cd, pushd, cd -), variables, functions, aliases, umask,
set -o and shopt options, anything sourced. Output streams as it comes
(stderr in red on a terminal, unless NO_COLOR is set). The prompt shows the
remote user, host and directory, and the last status when it was not 0.
Type 'help' for rexec's built-ins (put, get, timeout, !COMMAND, exit).

While a line runs, what you type goes to its stdin and Ctrl-D ends it;
Ctrl-C interrupts it (a second Ctrl-C within a second sends SIGTERM, a third
replaces the remote shell with a new one that has the session's state). At
the prompt, Ctrl-C discards the line and Ctrl-D leaves with the last status;
an unfinished line (an open quote, 'do' without 'done', a trailing
backslash, a here-document) goes on with a '> ' prompt. After a lost
connection you are offered a reconnect that restores the session's state.

With --pty you get the remote user's login shell on a pseudo-terminal instead,
this terminal in raw mode, for full-screen programs (vi, top, less).
"""

EPILOG = f"""\
exit status:
  the last line's status (or exit N's, in a line or as the built-in); with
  --pty, the remote shell's
  255  rexec failed: usage, address, key, connection, TLS or protocol error,
       or the connection was lost and not re-established

files:
  history: {history_path()}
           ($REXEC_HISTORY_FILE or $XDG_STATE_HOME/rexec/history override)

A keepalive ping goes every {SHELL_KEEPALIVE:g} s unless --keepalive is given, so a dead
server or network is noticed even while idle.

examples:
  rexec shell server
  rexec shell --pty server:7420
  rexec shell --cwd /srv/app server
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "shell", "an interactive shell on a server", DESCRIPTION, EPILOG
    )
    parser.add_argument(
        "address",
        metavar="HOST[:PORT]",
        help="the server (port 7420 by default; IPv6 as [::1]:PORT)",
    )
    parser.add_argument(
        "--pty",
        action="store_true",
        help="run the remote login shell on a pseudo-terminal (full-screen programs)",
    )
    parser.add_argument(
        "--sh",
        action="store_true",
        help="line mode in /bin/sh even where the login shell is bash (POSIX sh: no functions"
        " kept over a reconnect)",
    )
    parser.add_argument(
        "--cwd", type=server_directory, metavar="DIR",
        help="start the shell in DIR on the server (default: its home); where the server or the "
        "key has cwd_roots, name one of them",
    )  # fmt: skip
    add_connection_options(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the shell ``args`` describe; return rexec's exit status."""
    if args.keepalive is None:
        args.keepalive = SHELL_KEEPALIVE
    if args.pty:
        return run_async_command(_login_shell(args))
    # Here, not at the top: the line mode's prompt (prompt_toolkit) is heavy
    # to import, and every other rexec command would pay for it.
    from ..shell.repl import start_repl

    return run_async_command(start_repl(args))


async def _login_shell(args: argparse.Namespace) -> int:
    async with await open_connection(args, args.address) as connection:
        try:
            status = await run_on_pty(connection, LOGIN_SHELL, shell=True, cwd=args.cwd)
        except RemoteCommandError as exc:
            roots = args.cwd is None and outside_roots(exc.code, exc.message)
            return refused(connection.peer, exc, CWD_HINT if roots else None)
    if status.connection_lost and sys.stdout.isatty():
        print(flush=True)  # the remote prompt left the cursor mid-line
    return command_exit_status(status)
