"""``rexecd``: the command line, start-up checks, and the serving loop.

Every start-up failure (a bad flag, an unsafe key file, a port in use, a
non-loopback address without TLS) is one line on stderr and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import socket
import ssl
import sys
from pathlib import Path

from rexec import __version__
from rexec.audit import AuditLog
from rexec.config import DEFAULT_PORT, ServerConfig
from rexec.keyfile import KeyFileError, default_key_path, load_or_create_key
from rexec.protocol import Limits
from rexec.runner import Graces
from rexec.server import Server

EXIT_USAGE = 2
EXIT_STARTUP = 1


class StartupError(Exception):
    """A reason not to start, as one line for the operator."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rexecd",
        description=(
            "Run commands for authenticated rexec clients. Listens on 127.0.0.1 by default; "
            "any other address needs TLS (or --insecure). Clients prove they hold the "
            "shared key in --key-file, which is created on first start if missing."
        ),
        epilog=(
            "example: rexecd --port 7420   then, on the same machine: "
            "rexec run 127.0.0.1:7420 -- uname -a"
        ),
    )
    parser.add_argument("--version", action="version", version=f"rexecd {__version__}")
    net = parser.add_argument_group("listening")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    net.add_argument(
        "--port", type=int, default=DEFAULT_PORT,
        help=f"TCP port (default: {DEFAULT_PORT}; 0 picks a free one)",
    )
    net.add_argument(
        "--insecure", action="store_true",
        help="allow a non-loopback address without TLS (the traffic is then readable on the network)",
    )
    auth = parser.add_argument_group("authentication and TLS")
    auth.add_argument(
        "--key-file", type=Path, default=None,
        help=f"shared key file, created (mode 0600) if missing (default: {default_key_path()})",
    )
    auth.add_argument("--tls-cert", type=Path, help="TLS certificate chain (PEM)")
    auth.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    auth.add_argument(
        "--tls-client-ca", type=Path,
        help="require client certificates signed by this CA (PEM)",
    )
    ops = parser.add_argument_group("operation")
    ops.add_argument("--audit-log", type=Path, help="append JSON audit lines here (default: stderr)")
    ops.add_argument(
        "--shutdown-grace", type=float, default=10.0,
        help="seconds running commands get to finish on SIGTERM/SIGINT (default: 10)",
    )
    ops.add_argument("--kill-grace", type=float, default=2.0, help="seconds from SIGTERM to SIGKILL (default: 2)")
    ops.add_argument(
        "--drain-grace", type=float, default=2.0,
        help="seconds to keep reading output after a command exits (default: 2)",
    )
    ops.add_argument(
        "--max-commands", type=int, default=Limits().max_commands,
        help=f"running commands per connection (default: {Limits().max_commands})",
    )
    ops.add_argument("--max-total-commands", type=int, default=256, help="running commands in all (default: 256)")
    ops.add_argument("--auth-timeout", type=float, default=10.0, help="seconds to authenticate (default: 10)")
    return parser


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise StartupError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise StartupError("TLS needs both --tls-cert and --tls-key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=args.tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load TLS files: {exc}") from None
    return context


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Validate the arguments into a config.

    Raises:
        StartupError: with the one line to show.
    """
    tls = _tls_context(args)
    if tls is None and not args.insecure and not _is_loopback(args.host):
        raise StartupError(
            f"refusing to listen on {args.host} without TLS: use --tls-cert/--tls-key "
            "(and --tls-client-ca), listen on 127.0.0.1, or pass --insecure"
        )
    for name in ("shutdown_grace", "kill_grace", "drain_grace", "auth_timeout"):
        if getattr(args, name) < 0:
            raise StartupError(f"--{name.replace('_', '-')} must not be negative")
    if not 0 <= args.port <= 65535:
        raise StartupError("--port must be between 0 and 65535")
    try:
        limits = Limits(max_commands=args.max_commands)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    key_path = args.key_file or default_key_path()
    try:
        key, created = load_or_create_key(key_path)
    except KeyFileError as exc:
        raise StartupError(str(exc)) from None
    if created:
        print(f"rexecd: created a new key in {key_path}", file=sys.stderr, flush=True)
    return ServerConfig(
        key=key,
        server_name=socket.gethostname()[:255],
        limits=limits,
        max_total_commands=args.max_total_commands,
        auth_timeout=args.auth_timeout,
        shutdown_grace=args.shutdown_grace,
        graces=Graces(kill=args.kill_grace, drain=args.drain_grace),
        ssl=tls,
    )


async def serve(config: ServerConfig, audit: AuditLog, host: str, port: int) -> None:
    """Listen until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    server = Server(config, audit)
    try:
        listener = await loop.create_server(
            server.new_session, host, port,
            reuse_address=True, ssl=config.ssl,
            ssl_handshake_timeout=10.0 if config.ssl else None,
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound = listener.sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    audit.try_write("listen", address=f"{shown}:{bound[1]}", tls=config.ssl is not None)
    print(f"rexecd listening on {shown}:{bound[1]}", flush=True)
    print(
        f"rexecd: connect with: rexec run {shown}:{bound[1]} -- uname -a",
        file=sys.stderr, flush=True,
    )
    await stop.wait()
    listener.close()
    await server.shut_down()
    audit.try_write("shutdown")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = build_config(args)
        try:
            audit = AuditLog(str(args.audit_log) if args.audit_log else None)
        except OSError as exc:
            raise StartupError(f"cannot open audit log {args.audit_log}: {exc.strerror}") from None
        try:
            asyncio.run(serve(config, audit, args.host, args.port))
        finally:
            audit.close()
    except StartupError as exc:
        print(f"rexecd: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    return 0


if __name__ == "__main__":
    sys.exit(main())
