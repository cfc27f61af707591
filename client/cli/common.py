"""What the ``rexec`` subcommands that connect share: connection options,
connecting, and turning failures into one line on stderr and an exit status
(the statuses are listed in ``base``, whose names are re-exported here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import re
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from rexec import eventloop
from rexec.keyfile import KeyFileError, default_key_path, load_key

from ..address import Address, parse_address
from ..connection import ClientConnection
from ..dial import DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, connect
from ..errors import ConnectTimeout, RemoteCommandError, RexecConnectionError, RexecError
from ..result import RETURNCODE_BY_REFUSAL, ExitStatus
from ..tls import TlsFiles, TlsSetupError, client_ssl_context, default_tls_dir, tls_files
from .base import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    ArgumentParser,
    CliError,
    fail,
    positive_float,
)

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_BY_REFUSAL",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "ArgumentParser",
    "CliError",
    "add_connection_options",
    "command_exit_status",
    "fail",
    "keepalive_options",
    "open_connection",
    "positive_float",
    "refused",
    "run_async_command",
]

#: Exit statuses for commands the server could not start, as shells use them.
EXIT_BY_REFUSAL = RETURNCODE_BY_REFUSAL

#: Characters that only a shell gives a meaning to (quotes, operators,
#: expansions): a "program name" containing one was meant for the shell.
SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?'\"\\]")


def is_command_line(word: str) -> bool:
    """Whether ``word``, given where a program's name goes, reads as a shell
    command line (a blank or shell syntax in it), as ``'exit 3'`` does."""
    return any(char.isspace() for char in word) or bool(SHELL_SYNTAX.search(word))


def add_connection_options(
    parser: argparse.ArgumentParser, *, keepalive: float | None = None
) -> list[argparse.Action]:
    """Options for reaching and authenticating to a server; returns them.
    ``keepalive``: the default of ``--keepalive`` (None: off)."""
    keepalive_default = "off" if keepalive is None else f"{keepalive:g}"
    group = parser.add_argument_group("connection")
    tls = parser.add_argument_group(
        "TLS (servers not on this machine speak only TLS; see README 'A second machine')"
    )
    return [
        group.add_argument(
            "--key-file",
            metavar="FILE",
            help=f"shared key file, the server's (default: {default_key_path()}; "
            "$REXEC_KEY_FILE overrides)",
        ),
        group.add_argument(
            "--connect-timeout",
            type=positive_float,
            default=DEFAULT_CONNECT_TIMEOUT,
            metavar="SECONDS",
            help="give up connecting and authenticating after this long (default: %(default)g)",
        ),
        group.add_argument(
            "--keepalive",
            type=positive_float,
            default=keepalive,
            metavar="SECONDS",
            help="ping the server this often; give up after "
            f"{KEEPALIVE_COUNT} pings in a row go unanswered, as ssh's ServerAliveInterval "
            f"and ServerAliveCountMax (default: {keepalive_default})",
        ),
        tls.add_argument(
            "--tls",
            action="store_true",
            help=f"use TLS with the files of the TLS directory ({default_tls_dir()}): trust its "
            "ca.pem (else the system's CAs) and present its client.pem and client.key",
        ),
        tls.add_argument(
            "--tls-dir",
            metavar="DIR",
            help="use TLS with the files 'rexecd --init-tls DIR' made: DIR/ca.pem, "
            "DIR/client.pem, DIR/client.key",
        ),
        tls.add_argument(
            "--tls-ca", metavar="CA", help="use TLS, trusting this CA (PEM) for the server"
        ),
        tls.add_argument(
            "--tls-cert", metavar="CERT", help="use TLS with this client certificate (PEM)"
        ),
        tls.add_argument("--tls-key", metavar="KEY", help="private key of --tls-cert (PEM)"),
    ]


async def open_connection(
    args: argparse.Namespace, address_text: str, *, worked_before: bool = False
) -> ClientConnection:
    """Connect and authenticate as the connection options in ``args`` say.
    ``worked_before``: a reconnect with options that worked, so a silent
    server is hung or busy, not one that wants TLS (no ``--tls`` hint).

    Raises:
        CliError: a bad address, key file or TLS file.
        RexecConnectionError: connecting or authenticating failed.
    """
    try:
        address: Address = parse_address(address_text)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        key = load_key(Path(args.key_file) if args.key_file else default_key_path())
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    tls = _tls_settings(args)
    connecting = connect(
        address.host,
        address.port,
        key,
        ssl=tls.context if tls else None,
        connect_timeout=args.connect_timeout,
        **keepalive_options(args),
    )
    try:
        if tls is not None:
            return await connecting
        return await _unless_tls(connecting, address, args.connect_timeout)
    except RexecConnectionError as exc:
        hint = None if worked_before and tls is None else _connection_hint(exc, tls)
        if hint is None:
            raise
        raise type(exc)(f"{exc} ({hint})", exc.code) from exc


#: Keepalive pings in a row that may go unanswered before the connection is
#: given up, as ssh's ServerAliveCountMax (whose default is also 3).
KEEPALIVE_COUNT = 3


def keepalive_options(args: argparse.Namespace) -> dict[str, Any]:
    """``connect()``'s ``keepalive`` and ``keepalive_timeout`` as --keepalive
    asks: ``KEEPALIVE_COUNT`` pings in a row may go unanswered."""
    interval = args.keepalive
    timeout = interval * KEEPALIVE_COUNT if interval else DEFAULT_KEEPALIVE_TIMEOUT
    return {"keepalive": interval, "keepalive_timeout": timeout}


#: Seconds without a rexec hello after which a plaintext connection checks,
#: on a second connection, whether the server speaks TLS: a rexec server
#: greets at once on accepting, a TLS server waits for a TLS hello.
TLS_PROBE_DELAY = 1.0


async def _unless_tls(
    connecting: Coroutine[Any, Any, ClientConnection], address: Address, connect_timeout: float
) -> ClientConnection:
    """Await ``connecting`` (plaintext); if the server is silent for a while
    and a TLS hello on a second connection gets a TLS answer, give up at once
    rather than at the connect timeout.

    Raises:
        RexecConnectionError: the server speaks TLS, or as ``connect``.
    """
    task = asyncio.ensure_future(connecting)
    done, _ = await asyncio.wait({task}, timeout=min(TLS_PROBE_DELAY, connect_timeout / 2))
    if done:
        return task.result()
    probe = asyncio.ensure_future(_speaks_tls(address, connect_timeout))
    await asyncio.wait({task, probe}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done() and probe.result():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RexecConnectionError):
            await task
        raise RexecConnectionError(
            f"no answer from {address} in plaintext: it speaks TLS; add --tls "
            "(or --tls-dir DIR; README 'A second machine')"
        )
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    return await task


async def _speaks_tls(address: Address, timeout: float) -> bool:
    """Whether the server answers a TLS hello as a TLS server does (its
    certificate is not checked: this only tells TLS from silence)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(address.host, address.port, ssl=context)
    except ssl.SSLError as exc:
        # An alert (a client certificate required under TLS 1.2…) is TLS
        # too; "wrong version number" is a peer that spoke something else.
        return "ALERT" in (exc.reason or "")
    except (OSError, TimeoutError):
        return False
    writer.transport.abort()
    return True


def ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context the TLS options ask for (None: plain TCP).

    Raises:
        CliError: a TLS file can't be read or used.
    """
    tls = _tls_settings(args)
    return tls.context if tls else None


#: OpenSSL's verification results (X509_V_ERR_*) that a hint can name.
_NAME_MISMATCH = (62, 64)  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_CERT_HAS_EXPIRED = 10


def _connection_hint(exc: RexecConnectionError, tls: _Tls | None) -> str | None:
    """The option that likely fixes a failed connection, if one does."""
    if tls is None:
        # A TLS server waits for a TLS hello and we for a rexec one: the
        # symptom is silence, the cause a missing option.
        return "if the server uses TLS, add --tls" if isinstance(exc, ConnectTimeout) else None
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        if cause.verify_code in _NAME_MISMATCH:
            return (
                "connect by a name the server's certificate holds, or reissue it with this one: "
                "rexecd --init-tls DIR --tls-name NAME (README 'A second machine')"
            )
        if cause.verify_code == _CERT_HAS_EXPIRED:
            return "renew it: README 'A second machine'"
        if tls.ca_file is None:
            return (
                f"no CA was given, so only the system's are trusted: put the server's ca.pem in "
                f"{default_tls_dir()}, or give --tls-ca CA (README 'A second machine')"
            )
        return f"{tls.ca_file} did not sign it: give the CA that did, with --tls-ca or --tls-dir"
    if isinstance(exc, ConnectTimeout):
        # Silence is not a refusal: a stopped or overloaded server says
        # nothing about certificates.
        return None
    if exc.code is None and cause is None:
        # Under TLS 1.3 a server checks the client's certificate after the
        # handshake, and refuses by closing: that is all we see.
        if tls.cert_file is None:
            return (
                "if the server requires a client certificate:"
                " --tls-cert and --tls-key, or --tls-dir"
            )
        return (
            f"if the server refused {tls.cert_file}, use a client certificate its CA signed: "
            "the client.pem of the server's rexecd --init-tls"
        )
    return None


@dataclasses.dataclass(frozen=True)
class _Tls:
    """The TLS of a connection: its context and the files it was made from."""

    context: ssl.SSLContext
    ca_file: Path | None
    cert_file: Path | None


def _tls_settings(args: argparse.Namespace) -> _Tls | None:
    """The TLS the options ask for, or None for plain TCP."""
    explicit = TlsFiles(
        *(Path(name) if name else None for name in (args.tls_ca, args.tls_cert, args.tls_key))
    )
    if not (args.tls or args.tls_dir or explicit != TlsFiles()):
        return None
    try:
        if args.tls_dir:
            found = tls_files(Path(args.tls_dir), required=True)
        elif args.tls:
            found = tls_files(default_tls_dir(), required=False)
        else:
            found = TlsFiles()
        ca_file = explicit.ca_file or found.ca_file
        cert_file = explicit.cert_file or found.cert_file
        key_file = explicit.key_file or (found.key_file if not explicit.cert_file else None)
        context = client_ssl_context(ca_file, cert_file, key_file)
    except TlsSetupError as exc:
        raise CliError(f"cannot set up TLS: {exc}") from None
    return _Tls(context, ca_file, cert_file)


def run_async_command(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a subcommand's coroutine and return its exit status; every rexec
    failure becomes one ``rexec: …`` line on stderr, never a traceback."""
    try:
        return eventloop.run(coroutine)
    except CliError as exc:
        return fail(str(exc), exc.status)
    except RexecError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def refused(peer: str, exc: RemoteCommandError, hint: str | None = None) -> int:
    """Report a command the server refused, with what to do instead when
    known (on the same line); return the status to exit with."""
    message = f"{peer}: {exc}" + (f"; {hint}" if hint else "")
    return fail(message, EXIT_BY_REFUSAL.get(exc.code, EXIT_FAILURE))


def command_exit_status(status: ExitStatus) -> int:
    """The exit status for a remote command that ended with ``status``; a
    lost connection is reported in one line (status 255)."""
    if status.connection_lost:
        return fail(status.connection_error or "connection lost")
    return status.returncode
