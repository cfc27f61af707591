"""``rexecd``: the command line, start-up checks, and the serving loop.

Every start-up failure (a bad flag or config file, an unsafe key file, a port
in use, a non-loopback address without TLS) is one line on stderr and a
non-zero exit, never a traceback. Settings come from flags, ``REXECD_*``
variables and a TOML file, in that order of precedence (rexec.settings).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import ipaddress
import os
import resource
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rexec import __version__
from rexec.keyfile import KeyFileError, default_key_path, load_key, load_or_create_key
from rexec.log import log
from rexec.log import set_format as set_log_format
from rexec.ops.metrics import ServerMetrics
from rexec.ops.operations import Operations, OperationsError
from rexec.server.audit import AuditLog
from rexec.server.config import ServerConfig
from rexec.server.policy import KeyRules
from rexec.server.process_records import ProcessRecords, UnsafeDirectory
from rexec.server.server import Server
from rexec.server.session import Session
from rexec.server.settings import (
    DEFAULT_PORT,
    Settings,
    SettingsError,
    default_state_dir,
    load_settings,
    setting_names,
    settings_help,
)
from rexec.server.spawn import Account, ProcessPolicy, raise_open_file_limit

EXIT_STARTUP = 1

_RLIMITS = {
    "rlimit_cpu": resource.RLIMIT_CPU,
    "rlimit_fsize": resource.RLIMIT_FSIZE,
    "rlimit_nofile": resource.RLIMIT_NOFILE,
    "rlimit_nproc": resource.RLIMIT_NPROC,
}


class StartupError(Exception):
    """A reason not to start, as one line for the operator."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is in --help)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """One flag per setting, each defaulting to None ("not given"), so that the
    environment and the config file can fill what the command line leaves."""
    parser = _Parser(
        prog="rexecd",
        description=(
            "Run commands for authenticated rexec clients. Listens on 127.0.0.1 by default; "
            "any other address needs TLS (or --insecure). Clients prove they hold the "
            "shared key in --key-file, which is created on first start if missing."
        ),
        epilog=(
            "Every setting can also be given as an environment variable REXECD_<NAME> "
            "(REXECD_KILL_GRACE=1) or in the TOML file of --config; flags win over the "
            "environment, which wins over the file. "
            f"Example: rexecd --port {DEFAULT_PORT}   then, on the same machine: "
            "rexec run 127.0.0.1 -- uname -a"
        ),
    )
    parser.add_argument("--version", action="version", version=f"rexecd {__version__}")
    parser.add_argument("--config", help="TOML config file (see README, 'Configuration')")
    parser.add_argument(
        "--check-config", action="store_true",
        help="check the settings, keys and TLS files, print the result and exit",
    )
    defaults = Settings()
    for name in setting_names():
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        help_text = settings_help(name)
        if name == "key_file":
            help_text += f" (default: {default_key_path()})"
        elif default not in (None, (), False):
            help_text += f" (default: {default})"
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_const", const=True, default=None, help=help_text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, action="append", default=None, help=help_text + "; repeatable")
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, type=_non_negative(kind), default=None, help=help_text)
    return parser


def _non_negative(kind: type) -> Any:
    def convert(text: str) -> Any:
        value = kind(text)
        if isinstance(value, (int, float)) and value < 0:
            raise ValueError(text)
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its message
    return convert


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise StartupError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise StartupError("TLS needs both --tls-cert and --tls-key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=settings.tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load TLS files: {exc}") from None
    return context


def _load_keys(settings: Settings, *, create: bool = True) -> tuple[KeyRules, ...]:
    """The keys with their rules. Without ``create`` (``--check-config``) a
    missing default key is not created: a check changes nothing."""
    try:
        if settings.keys:
            return tuple(KeyRules.from_spec(spec, load_key(Path(spec.file))) for spec in settings.keys)
        key_path = Path(settings.key_file) if settings.key_file else default_key_path()
        if not create and not key_path.exists():
            print(f"rexecd: {key_path} does not exist yet; it will be created on first start")
            return (KeyRules(name="default", key=bytes(32)),)
        key, created = load_or_create_key(key_path)
    except KeyFileError as exc:
        raise StartupError(str(exc)) from None
    if created:
        log(f"created a new key in {key_path}")
    return (KeyRules(name="default", key=key),)


def _has_capability(number: int) -> bool:
    """Whether this process has capability ``number`` in its effective set."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> number & 1)
    except (OSError, ValueError):
        pass
    return False


_CAP_SYS_RESOURCE = 24


def _check_rlimits(settings: Settings, switch_user: bool) -> None:
    """Refuse at start-up what every spawn would fail on: prlimit on another
    user's process, or above our own hard limit, needs CAP_SYS_RESOURCE."""
    if _has_capability(_CAP_SYS_RESOURCE):
        return
    for name, limit in _RLIMITS.items():
        value = getattr(settings, name)
        if value <= 0:
            continue
        if switch_user:
            raise StartupError(
                f"{name} with run_as needs CAP_SYS_RESOURCE, which this process lacks"
            )
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY and value > hard:
            raise StartupError(f"{name} {value} is above this process's hard limit {hard}")


def _process_policy(settings: Settings) -> ProcessPolicy:
    rlimits = tuple(
        (limit, getattr(settings, name)) for name, limit in _RLIMITS.items() if getattr(settings, name) > 0
    )
    if settings.run_as is None:
        _check_rlimits(settings, switch_user=False)
        return dataclasses.replace(ProcessPolicy.current(), rlimits=rlimits)
    try:
        account = Account.named(settings.run_as)
    except KeyError:
        raise StartupError(f"run_as: no user named {settings.run_as!r}") from None
    if os.geteuid() != 0:
        raise StartupError("run_as needs rexecd to start as root")
    if account.uid == 0:
        raise StartupError("run_as must name an unprivileged user, not root")
    _check_rlimits(settings, switch_user=True)
    return ProcessPolicy(account, switch_user=True, rlimits=rlimits)


def build_config(settings: Settings, *, check_only: bool = False) -> ServerConfig:
    """Resolve settings into a runnable config (``check_only``: create nothing).

    Raises:
        StartupError: with the one line to show.
    """
    tls = _tls_context(settings)
    if tls is None and not settings.insecure and not _is_loopback(settings.host):
        raise StartupError(
            f"refusing to listen on {settings.host} without TLS: use --tls-cert/--tls-key "
            "(and --tls-client-ca), listen on 127.0.0.1, or pass --insecure"
        )
    return ServerConfig(
        keys=_load_keys(settings, create=not check_only),
        server_name=socket.gethostname()[:255],
        settings=settings,
        process_policy=_process_policy(settings),
        ssl=tls,
    )


async def serve(
    config: ServerConfig, audit: AuditLog, records: ProcessRecords | None,
    rebuild: Callable[[], ServerConfig] | None = None,
) -> None:
    """Listen until SIGTERM or SIGINT, then shut down gracefully; with
    ``rebuild``, SIGHUP replaces keys and rules with what it returns."""
    loop = asyncio.get_running_loop()
    settings = config.settings
    server = Server(config, audit, records)
    metrics = ServerMetrics(server)
    server.subscribe(metrics)
    try:
        listener = await loop.create_server(
            lambda: Session(server), settings.host, settings.port,
            reuse_address=True, ssl=config.ssl,
            ssl_handshake_timeout=10.0 if config.ssl else None,
        )  # fmt: skip
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound = listener.sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    try:
        operations = await Operations.start(server, metrics, bound, rebuild)  # --http, --announce, SIGHUP
    except OperationsError as exc:
        listener.close()
        raise StartupError(str(exc)) from None
    audit.try_write(
        "listen", address=f"{shown}:{bound[1]}", tls=config.ssl is not None,
        keys=[key.name for key in config.keys],
    )  # fmt: skip
    # Ready once the first record is written (or found unwritable, so that the
    # first command is refused, not run unrecorded), within the audit timeout.
    await asyncio.to_thread(audit.flush, settings.audit_timeout)
    print(f"rexecd listening on {shown}:{bound[1]}", flush=True)
    log(f"connect with: rexec run {shown}:{bound[1]} -- uname -a")
    await stop.wait()
    listener.close()
    await server.shut_down()
    await operations.close()
    audit.try_write("shutdown")


def _records(settings: Settings, audit: AuditLog) -> ProcessRecords | None:
    """Open the state directory and end what a crashed predecessor left running."""
    directory = Path(settings.state_dir) if settings.state_dir else default_state_dir()
    try:
        records = ProcessRecords(directory)
        killed = records.sweep()
    except UnsafeDirectory as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"cannot use state directory {directory}: {exc.strerror}") from None
    if killed:
        audit.try_write("sweep", killed_process_groups=killed)
    return records


def _rebuild(flags: dict[str, Any], config_file: str | None) -> ServerConfig:
    """The config a fresh start would build now (for SIGHUP).

    Raises:
        StartupError: the settings, keys or TLS files are broken.
    """
    try:
        settings = load_settings(flags, os.environ, config_file)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    return build_config(settings)


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    config_file, check_only = args.pop("config"), args.pop("check_config")
    try:
        try:
            settings = load_settings(args, os.environ, config_file)
        except SettingsError as exc:
            raise StartupError(str(exc)) from None
        set_log_format(settings.log_format)
        config = build_config(settings, check_only=check_only)
        if check_only:
            print(f"rexecd: configuration OK ({len(config.keys)} key(s))")
            return 0
        raise_open_file_limit()  # room for hundreds of connections (rexec/server/admission.py)
        try:
            audit = AuditLog(
                settings.audit_log, timeout=settings.audit_timeout, max_buffer=settings.audit_buffer
            )
        except OSError as exc:
            raise StartupError(f"cannot open audit log {settings.audit_log}: {exc.strerror}") from None
        try:
            rebuild = functools.partial(_rebuild, args, config_file)
            asyncio.run(serve(config, audit, _records(settings, audit), rebuild))
        finally:
            audit.close()
    except StartupError as exc:
        log(str(exc), level="error")
        return EXIT_STARTUP
    return 0


if __name__ == "__main__":
    sys.exit(main())
