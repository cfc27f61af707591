"""``rexecd``: the command line, start-up checks, and the serving loop.

Every start-up failure (a bad flag or config file, an unsafe key file, a port
in use, a non-loopback address without TLS) is one line on stderr and a
non-zero exit, never a traceback. Settings come from flags, ``REXECD_*``
variables and a TOML file, in that order of precedence (rexec.settings).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import resource
import signal
import socket
import sys
from pathlib import Path

from rexec import eventloop
from rexec.connect_hint import KEY_FILE_OF_A_KEY, connect_hint
from rexec.files import TempRecords, UnsafeRecords
from rexec.keyfile import KeyFileError, default_key_path, load_key, load_or_create_key
from rexec.log import capture_library_logs, log, loop_exception_handler
from rexec.log import set_format as set_log_format
from rexec.log import start_background as log_to_background
from rexec.log import stop_background as stop_log_background
from rexec.ops.operations import Operations, OperationsError
from rexec.ops.reload import Rebuild
from rexec.server.audit import AuditLog
from rexec.server.audit_file import check_log
from rexec.server.config import ServerConfig
from rexec.server.flags import EXIT_STARTUP, build_parser
from rexec.server.policy import KeyRules
from rexec.server.process_records import ProcessRecords, UnsafeDirectory
from rexec.server.process_setup import Account, ProcessPolicy
from rexec.server.server import Server
from rexec.server.session import Session
from rexec.server.settings import (
    LOOPBACKS,
    Settings,
    SettingsError,
    audit_log_path,
    default_state_dir,
)
from rexec.server.settings_file import load_settings
from rexec.server.spawn import raise_open_file_limit, reset_inherited_signals
from rexec.server.tls_context import TlsSetupError, server_tls_context
from rexec.server.transfer_io import PARTIAL_MAX_AGE

_RLIMITS = {
    "rlimit_cpu": resource.RLIMIT_CPU,
    "rlimit_fsize": resource.RLIMIT_FSIZE,
    "rlimit_nofile": resource.RLIMIT_NOFILE,
    "rlimit_nproc": resource.RLIMIT_NPROC,
}


class StartupError(Exception):
    """A reason not to start, as one line for the operator."""


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _load_keys(settings: Settings, *, create: bool = True) -> tuple[KeyRules, ...]:
    """The keys with their rules. Without ``create`` (``--check-config``) a
    missing default key is not created: a check changes nothing."""
    try:
        if settings.keys:
            return tuple(
                KeyRules.from_spec(spec, load_key(Path(spec.file))) for spec in settings.keys
            )
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
        (limit, getattr(settings, name))
        for name, limit in _RLIMITS.items()
        if getattr(settings, name) > 0
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
    try:
        tls = server_tls_context(settings)
    except TlsSetupError as exc:
        raise StartupError(str(exc)) from None
    loopback = settings.host == LOOPBACKS or _is_loopback(settings.host)
    if tls is None and not settings.insecure and not loopback:
        raise StartupError(
            f"refusing to listen on {settings.host} without TLS: use --tls-cert/--tls-key "
            "(and --tls-client-ca; rexecd --init-tls DIR makes them), listen on 127.0.0.1, "
            "or pass --insecure"
        )
    return ServerConfig(
        keys=_load_keys(settings, create=not check_only),
        server_name=socket.gethostname()[:255],
        settings=settings,
        process_policy=_process_policy(settings),
        ssl=tls,
    )


async def _listen(server: Server, settings: Settings) -> list[asyncio.Server]:
    """The listening sockets: ``host``, or both loopbacks for ``localhost``
    (the IPv6 one on the port the IPv4 one got, and only where the host has
    IPv6). They accept plain TCP: under TLS each session runs its handshake
    once admitted (rexec/server/session.py).

    Raises:
        StartupError: the address can't be listened on.
    """
    loop = asyncio.get_running_loop()
    hosts = ["127.0.0.1", "::1"] if settings.host == LOOPBACKS else [settings.host]
    port = settings.port
    listeners: list[asyncio.Server] = []
    for host in hosts:
        try:
            listener = await loop.create_server(
                lambda: Session(server), host, port, reuse_address=True
            )
        except OSError as exc:
            if listeners:  # ::1 after 127.0.0.1: a host without IPv6 still serves
                log(f"not listening on [{host}]:{port}: {exc.strerror or exc}")
                break
            for opened in listeners:
                opened.close()
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        listeners.append(listener)
        port = listener.sockets[0].getsockname()[1]
    return listeners


def _check_port_free(settings: Settings) -> None:
    """Fail as listening would, before anything is created (the key file on
    a first start), when the port is taken: a failed start leaves nothing.
    The listeners bind for real later; this is only an early answer.

    Raises:
        StartupError: the address can't be listened on.
    """
    if settings.port == 0:
        return
    host = "127.0.0.1" if settings.host == LOOPBACKS else settings.host
    try:
        infos = socket.getaddrinfo(host, settings.port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listener
            probe.bind(address)
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {host}:{settings.port}: {exc.strerror or exc}"
        ) from None


def _shown(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(
    config: ServerConfig,
    audit: AuditLog,
    records: ProcessRecords | None,
    rebuild: Rebuild | None = None,
    temp_records: TempRecords | None = None,
) -> None:
    """Listen until SIGTERM or SIGINT, then shut down gracefully; with
    ``rebuild``, SIGHUP replaces keys and rules with what it returns."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(loop_exception_handler)
    server = Server(config, audit, records)
    server.temp_records = temp_records
    listeners = await _listen(server, config.settings)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    addresses = [_shown(listener.sockets[0].getsockname()) for listener in listeners]
    try:
        first = listeners[0].sockets[0].getsockname()
        operations = await Operations.start(server, first, rebuild)  # --http, --announce, SIGHUP
    except OperationsError as exc:
        for listener in listeners:
            listener.close()
        raise StartupError(str(exc)) from None
    for address in addresses:
        audit.try_write(
            "listen", address=address, tls=config.ssl is not None,
            keys=[key.name for key in config.keys],
        )  # fmt: skip
    # Ready once the first records are written (or found unwritable, so that
    # the first command is refused, not run unrecorded), within the audit timeout.
    await asyncio.to_thread(audit.flush, config.settings.audit_timeout)
    for address in addresses:  # the first line is the one scripts wait for
        print(f"rexecd listening on {address}", flush=True)
    settings = config.settings
    tls, key_file = (
        config.ssl is not None,
        KEY_FILE_OF_A_KEY if settings.keys else settings.key_file,
    )
    hint = connect_hint(first[0], first[1], key_file=key_file, tls=tls)
    if settings.keys:
        hint += f" ({KEY_FILE_OF_A_KEY}: the file of a key of [[keys]]: "
        hint += ", ".join(key.name for key in config.keys) + ")"
    log(f"connect with: {hint}")
    log(f"audit log: {audit.path or 'stderr'}")
    await stop.wait()
    for listener in listeners:
        listener.close()
    await server.shut_down()
    await operations.close()
    audit.try_write("shutdown")


def _open_audit(settings: Settings) -> AuditLog:
    """The audit log, in its own file unless ``audit_log = "-"`` (stderr)."""
    path = audit_log_path(settings)
    try:
        if path is not None and settings.audit_log is None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        audit = AuditLog(
            None if path is None else str(path),
            timeout=settings.audit_timeout,
            max_buffer=settings.audit_buffer,
        )
    except OSError as exc:
        raise StartupError(f"cannot open audit log {path}: {exc.strerror}") from None
    return audit


def _check_audit(settings: Settings) -> None:
    """What ``_open_audit`` would refuse, found by the same checks without
    creating or opening the log (``--check-config``)."""
    path = audit_log_path(settings)
    if path is None or (settings.audit_log is None and not path.parent.exists()):
        return  # stderr; or the default place, whose directory the start makes
    try:
        check_log(str(path))
    except OSError as exc:
        raise StartupError(f"cannot open audit log {path}: {exc.strerror}") from None


def _records(settings: Settings, audit: AuditLog) -> tuple[ProcessRecords, TempRecords]:
    """Open the state directory and clean up after a crashed predecessor: end
    the process groups it left running, remove the temporary files of its
    puts (and resumable partial files past their age)."""
    directory = Path(settings.state_dir) if settings.state_dir else default_state_dir()
    try:
        records = ProcessRecords(directory)
        killed = records.sweep()
        temp_records = TempRecords(directory)
        removed = temp_records.sweep(partial_max_age=PARTIAL_MAX_AGE)
    except (UnsafeDirectory, UnsafeRecords) as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"cannot use state directory {directory}: {exc.strerror}") from None
    if killed:
        audit.try_write("sweep", killed_process_groups=killed)
    if removed:
        audit.try_write("sweep", removed_temp_files=removed)
    return records, temp_records


def main(argv: list[str] | None = None) -> int:
    reset_inherited_signals()  # before any thread exists
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    config_file, check_only = args.pop("config"), args.pop("check_config")
    init_tls_dir, tls_names = args.pop("init_tls"), args.pop("tls_name")
    if tls_names and init_tls_dir is None:
        parser.error("--tls-name goes with --init-tls DIR")
    if init_tls_dir is not None:
        from rexec.pki import init_tls_command  # cryptography: only loaded for this

        return init_tls_command(Path(init_tls_dir), tls_names)
    try:
        try:
            settings = load_settings(args, config_file)
        except SettingsError as exc:
            raise StartupError(str(exc)) from None
        set_log_format(settings.log_format)
        if not check_only:
            _check_port_free(settings)  # before a first start creates the key file
        config = build_config(settings, check_only=check_only)
        if check_only:
            _check_audit(settings)
            print(f"rexecd: configuration OK ({len(config.keys)} key(s))")
            return 0
        raise_open_file_limit()  # room for hundreds of connections (rexec/server/admission.py)
        eventloop.pin_allocator()  # every command's output may be bulk
        # From here on no message of ours or of a library waits on stderr.
        log_to_background()
        capture_library_logs()
        try:
            audit = _open_audit(settings)
            try:
                rebuild = Rebuild(build_config, args, config_file)
                records, temp_records = _records(settings, audit)
                eventloop.run(serve(config, audit, records, rebuild, temp_records))
            finally:
                audit.close()
        finally:
            stop_log_background()
    except StartupError as exc:
        log(str(exc), level="error")
        return EXIT_STARTUP
    return 0


if __name__ == "__main__":
    sys.exit(main())
