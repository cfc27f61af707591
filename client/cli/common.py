"""What every ``rexec`` subcommand shares: connection options, connecting,
and turning failures into one line on stderr and an exit status.

Exit statuses of the ``rexec`` program (subcommands add their own meanings
below 255):

* 255: rexec itself failed: bad usage or address, key file, connection,
  authentication, TLS or protocol error, or the connection was lost.
* 130: interrupted (Ctrl-C) before a command was running.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn

from rexec.keyfile import KeyFileError, default_key_path, load_key

from ..address import Address, parse_address
from ..connection import DEFAULT_CONNECT_TIMEOUT, ClientConnection, connect
from ..errors import RemoteCommandError, RexecError
from ..result import RETURNCODE_BY_REFUSAL, ExitStatus
from ..tls import client_ssl_context

EXIT_FAILURE = 255
EXIT_INTERRUPTED = 130
#: Exit statuses for commands the server could not start, as shells use them.
EXIT_BY_REFUSAL = RETURNCODE_BY_REFUSAL


class CliError(Exception):
    """A failure to report as ``rexec: MESSAGE`` (one line) with ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class ArgumentParser(argparse.ArgumentParser):
    """argparse, exiting 255 on a usage error, so that statuses 1–254 stay
    the remote command's."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_FAILURE, f"rexec: {message}\n")


def positive_float(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Options for reaching and authenticating to a server."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--key-file",
        metavar="FILE",
        help=f"shared key file, the server's (default: {default_key_path()}; "
        "$REXEC_KEY_FILE overrides)",
    )
    group.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help="give up connecting and authenticating after this long (default: %(default)g)",
    )
    group.add_argument(
        "--keepalive",
        type=positive_float,
        metavar="SECONDS",
        help="ping the server this often and give up when it stops answering (default: off)",
    )
    tls = parser.add_argument_group("TLS (needed for servers not on this machine)")
    tls.add_argument("--tls", action="store_true", help="use TLS, trusting the system's CAs")
    tls.add_argument(
        "--tls-ca", metavar="CA", help="use TLS, trusting this CA (PEM) for the server"
    )
    tls.add_argument(
        "--tls-cert", metavar="CERT", help="client certificate (PEM), if the server wants one"
    )
    tls.add_argument("--tls-key", metavar="KEY", help="private key of --tls-cert (PEM)")


async def open_connection(args: argparse.Namespace, address_text: str) -> ClientConnection:
    """Connect and authenticate as the connection options in ``args`` say.

    Raises:
        CliError: a bad address, key file or TLS file.
        RexecConnectionError: connecting or authenticating failed.
    """
    try:
        address: Address = parse_address(address_text)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        key = load_key(args.key_file or default_key_path())
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    return await connect(
        address.host,
        address.port,
        key,
        ssl=ssl_context(args),
        connect_timeout=args.connect_timeout,
        keepalive=args.keepalive,
    )


def ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context the TLS options ask for (None: plain TCP).

    Raises:
        CliError: a TLS file can't be read or used.
    """
    wants_tls = args.tls or args.tls_ca or args.tls_cert or args.tls_key
    if not wants_tls:
        return None
    try:
        return client_ssl_context(args.tls_ca, args.tls_cert, args.tls_key)
    except (OSError, ValueError) as exc:
        # ssl.SSLError is an OSError; its str() is noisy, its reason is not.
        detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise CliError(f"cannot set up TLS: {detail}") from None


def run_async_command(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a subcommand's coroutine and return its exit status; every rexec
    failure becomes one ``rexec: …`` line on stderr, never a traceback."""
    try:
        return asyncio.run(coroutine)
    except CliError as exc:
        return fail(str(exc), exc.status)
    except RexecError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def fail(message: str, status: int = EXIT_FAILURE) -> int:
    """Print ``rexec: MESSAGE`` on stderr and return ``status``."""
    print(f"rexec: {message}", file=sys.stderr, flush=True)
    return status


def refused(peer: str, exc: RemoteCommandError) -> int:
    """Report a command the server refused; return the status to exit with."""
    return fail(f"{peer}: {exc}", EXIT_BY_REFUSAL.get(exc.code, EXIT_FAILURE))


def command_exit_status(status: ExitStatus) -> int:
    """The exit status for a remote command that ended with ``status``; a
    lost connection is reported in one line (status 255)."""
    if status.connection_lost:
        return fail(status.connection_error or "connection lost")
    return status.returncode
