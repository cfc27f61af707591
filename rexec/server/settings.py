"""``rexecd`` settings: defaults, a TOML config file, the environment, flags.

Precedence, highest first: command-line flags, ``REXECD_*`` environment
variables, the config file (``--config F`` or ``REXECD_CONFIG``), the defaults
below. Every setting has one name used in all three places: ``kill_grace`` is
``--kill-grace``, ``REXECD_KILL_GRACE`` and ``kill_grace`` in the file's
``[server]``, ``[limits]`` or ``[commands]`` table (the table is for people; any
setting may stand in any of them). Keys and their rules live in ``[[keys]]``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rexec.protocol import Limits
from rexec.server.environment import DEFAULT_ENV_ALLOW, EnvPatternError, check_patterns

DEFAULT_PORT = 7420


class SettingsError(Exception):
    """A setting is missing, malformed or inconsistent; one line for a person."""


def _setting(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every operational setting of the daemon, with its default and reason."""

    # Listening.
    host: str = _setting("127.0.0.1", "address to listen on")
    port: int = _setting(DEFAULT_PORT, "TCP port (0 picks a free one)")
    insecure: bool = _setting(False, "allow a non-loopback address without TLS")
    tls_cert: str | None = _setting(None, "TLS certificate chain (PEM)")
    tls_key: str | None = _setting(None, "TLS private key (PEM)")
    tls_client_ca: str | None = _setting(None, "require client certificates signed by this CA (PEM)")
    # Identity and records.
    key_file: str | None = _setting(None, "shared key file, created (0600) if missing")
    audit_log: str | None = _setting(None, "append JSON audit lines here (default: stderr)")
    audit_timeout: float = _setting(
        5.0, "seconds an audit record may wait to be written before new commands are refused"
    )
    audit_buffer: int = _setting(
        4 * 1024 * 1024, "bytes of audit records held while the log is slow or stuck"
    )
    state_dir: str | None = _setting(
        None, "where running process groups are recorded, so a restart after a crash can end them"
    )
    # Deadlines, in seconds. Small enough that a stuck peer frees its slot soon,
    # large enough for a slow network.
    auth_timeout: float = _setting(10.0, "seconds a new connection has to authenticate")
    frame_timeout: float = _setting(10.0, "seconds a frame may take from its first byte to its last header byte")
    idle_timeout: float = _setting(
        300.0, "seconds an authenticated connection may stay silent with nothing running (0: never)"
    )
    stall_timeout: float = _setting(
        60.0, "seconds a client may leave output unread before its commands are ended (0: never)"
    )
    shutdown_grace: float = _setting(10.0, "seconds running commands get to finish on SIGTERM/SIGINT")
    kill_grace: float = _setting(2.0, "seconds from SIGTERM to SIGKILL")
    drain_grace: float = _setting(2.0, "seconds to keep reading output after a command exits")
    # Admission (rexec/server/admission.py): like sshd's MaxStartups and
    # PerSourcePenalties, except that nothing is refused before a key is proven.
    max_connections: int = _setting(512, "authenticated connections in all")
    max_connections_per_source: int = _setting(64, "authenticated connections from one address")
    max_unauthenticated: int = _setting(
        256, "connections still authenticating; beyond, the oldest of the busiest address is closed"
    )
    auth_failures: int = _setting(
        5, "failed authentications from one address before each further one is answered late"
    )
    auth_failure_window: float = _setting(60.0, "seconds over which failures are counted")
    auth_penalty: float = _setting(
        30.0, "longest delay before a failed authentication is answered (1 s, doubling)"
    )
    auth_penalty_exempt: tuple[str, ...] = _setting(
        (), "networks (CIDR) whose failed authentications are never delayed"
    )
    # Commands.
    max_commands: int = _setting(Limits().max_commands, "running commands per connection")
    max_total_commands: int = _setting(256, "running commands in all")
    max_argv_bytes: int = _setting(128 * 1024, "bytes of argv or shell string of one command")
    max_env_bytes: int = _setting(64 * 1024, "bytes of client-supplied environment of one command")
    max_timeout: float = _setting(0.0, "longest wall time of a command, seconds (0: no limit)")
    max_output: int = _setting(0, "most output bytes of one command (0: no limit)")
    run_as: str | None = _setting(None, "user to run commands as (the daemon must be root)")
    cwd_roots: tuple[str, ...] = _setting((), "directories commands may run in (empty: anywhere)")
    env_allow: tuple[str, ...] = _setting(
        (), f"environment names (patterns) a client may set, besides {', '.join(DEFAULT_ENV_ALLOW)}; "
        "for keys without allow_argv or an env_allow of their own"
    )
    rlimit_cpu: int = _setting(0, "CPU seconds per command (0: unlimited)")
    rlimit_fsize: int = _setting(0, "largest file a command may write, bytes (0: unlimited)")
    rlimit_nofile: int = _setting(0, "open files per command process (0: inherited)")
    rlimit_nproc: int = _setting(0, "processes per user, applied to commands (0: unlimited)")
    # Operations (rexec/ops/operations.py): all off unless asked for.
    http: str | None = _setting(
        None, "serve /healthz and /metrics over HTTP on HOST:PORT (an IP; off loopback needs --insecure)"
    )
    announce: bool = _setting(False, "answer UDP discovery probes (rexec discover)")
    announce_port: int = _setting(7421, "UDP port discovery probes come to (0 picks a free one)")
    announce_networks: tuple[str, ...] = _setting(
        ("127.0.0.0/8",), "IPv4 networks (CIDR) whose discovery probes are answered"
    )
    log_format: str = _setting("text", "format of rexecd's own stderr messages: text or json")
    # Keys with their rules; empty means the one key of key_file, unrestricted.
    keys: tuple[KeySpec, ...] = _setting((), "authorised keys ([[keys]] tables)")


@dataclasses.dataclass(frozen=True)
class KeySpec:
    """One ``[[keys]]`` table: a named key and what its holder may do, like the
    options of an OpenSSH ``authorized_keys`` line. Absent rules allow."""

    name: str
    file: str
    allow_argv: tuple[str, ...] = ()  # argv prefixes, words split on spaces; empty: any
    allow_shell: bool = True
    allow_pty: bool = True
    allow_transfer: bool = True
    cwd_roots: tuple[str, ...] = ()
    max_timeout: float = 0.0
    # Names or NAME_* patterns its holder may set; None: the server's list, or
    # none with allow_argv (rexec/server/environment.py).
    env_allow: tuple[str, ...] | None = None


_FIELDS = {field.name: field for field in dataclasses.fields(Settings) if field.name != "keys"}
_KEY_FIELDS = {field.name: field for field in dataclasses.fields(KeySpec)}


def settings_help(name: str) -> str:
    return str(_FIELDS[name].metadata["help"])


def setting_names() -> list[str]:
    return list(_FIELDS)


#: Settings with a narrower range than "≥ 0", checked where the value is read
#: so that the message names its source (the file, or the variable).
_RANGES = {
    "port": (0, 65535), "announce_port": (0, 65535), "max_commands": (1, None),
    "max_total_commands": (1, None), "audit_timeout": (0.01, None), "audit_buffer": (4096, None),
    "max_unauthenticated": (1, None),
}  # fmt: skip


def _convert(name: str, value: Any, annotation: str, where: str, *, text: bool = False) -> Any:
    """Check and convert one raw value: from TOML (typed: a string is only a
    string), or, with ``text``, a string from the environment."""
    result = _convert_type(name, value, annotation, where, text=text)
    bounds = _RANGES.get(name)
    if bounds is not None:
        low, high = bounds
        if result < low or (high is not None and result > high):
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise SettingsError(f"{where}: {name} must be {span}")
    return result


def _convert_type(name: str, value: Any, annotation: str, where: str, *, text: bool) -> Any:
    from_text = text and isinstance(value, str) and not annotation.startswith("str")
    try:
        if annotation == "bool":
            if from_text:
                lowered = value.lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                return lowered in ("1", "true", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if annotation == "int":
            if isinstance(value, bool):
                raise ValueError
            result = int(value) if from_text else value
            if not isinstance(result, int) or result < 0:
                raise ValueError
            return result
        if annotation == "float":
            if isinstance(value, bool):
                raise ValueError
            result = float(value) if from_text else value
            if not isinstance(result, (int, float)) or not math.isfinite(result) or result < 0:
                raise ValueError
            return float(result)
        if annotation.startswith("tuple"):
            items = value.split(",") if from_text else value
            if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
                raise ValueError
            return tuple(item.strip() for item in items if item.strip())
        if not isinstance(value, str):
            raise ValueError
        return value
    except ValueError:
        kind = {"bool": "true or false", "int": "a whole number ≥ 0", "float": "a finite number ≥ 0"}.get(
            annotation, "a list of strings" if annotation.startswith("tuple") else "a string"
        )
        raise SettingsError(f"{where}: {name} must be {kind}") from None


def _read_file(path: Path) -> tuple[dict[str, Any], tuple[KeySpec, ...]]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    keys: list[KeySpec] = []
    for table_name, table in document.items():
        if table_name == "keys":
            if not isinstance(table, list):
                raise SettingsError(f"{path}: keys must be [[keys]] tables")
            keys.extend(_key_spec(entry, path, index) for index, entry in enumerate(table, 1))
            continue
        if table_name not in ("server", "limits", "commands") or not isinstance(table, dict):
            raise SettingsError(f"{path}: unknown table [{table_name}]")
        for name, value in table.items():
            if name not in _FIELDS:
                raise SettingsError(f"{path}: unknown setting {name!r} in [{table_name}]")
            values[name] = _convert(name, value, str(_FIELDS[name].type), str(path))
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise SettingsError(f"{path}: two [[keys]] have the same name")
    return values, tuple(keys)


def _key_spec(entry: Any, path: Path, index: int) -> KeySpec:
    where = f"{path}: [[keys]] #{index}"
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} must be a table")
    for required in ("name", "file"):
        if not isinstance(entry.get(required), str) or not entry[required]:
            raise SettingsError(f"{where} needs {required} = \"...\"")
    fields: dict[str, Any] = {}
    for name, value in entry.items():
        if name not in _KEY_FIELDS:
            raise SettingsError(f"{where}: unknown rule {name!r}")
        fields[name] = _convert(name, value, str(_KEY_FIELDS[name].type), where)
    for prefix in fields.get("allow_argv", ()):
        try:
            words = shlex.split(prefix)
        except ValueError:
            raise SettingsError(f"{where}: allow_argv entry {prefix!r} has unbalanced quotes") from None
        if not words:
            raise SettingsError(f"{where}: allow_argv entries must not be empty")
    _check_env_allow(fields.get("env_allow", ()), where)
    return KeySpec(**fields)


def _check_env_allow(patterns: tuple[str, ...], where: str | None) -> None:
    try:
        check_patterns(patterns)
    except EnvPatternError as exc:
        raise SettingsError(f"{where}: {exc}" if where else str(exc)) from None


def load_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str], config_file: str | None
) -> Settings:
    """Merge the sources by precedence (flags > environment > file > defaults).

    Args:
        flags: values given on the command line (None for not given).
        environ: the process environment (``REXECD_*`` names are read).
        config_file: path of the TOML file, if any.

    Raises:
        SettingsError: a bad file, value or combination.
    """
    values: dict[str, Any] = {}
    keys: tuple[KeySpec, ...] = ()
    config_file = config_file or environ.get("REXECD_CONFIG") or None
    if config_file:
        values, keys = _read_file(Path(config_file))
    for name, field in _FIELDS.items():
        raw = environ.get(f"REXECD_{name.upper()}")
        if raw is not None:
            values[name] = _convert(name, raw, str(field.type), f"REXECD_{name.upper()}", text=True)
    for name, value in flags.items():
        if value is not None and name in _FIELDS:
            value = tuple(value) if isinstance(value, list) else value
            values[name] = _convert(name, value, str(_FIELDS[name].type), f"--{name.replace('_', '-')}")
    settings = Settings(keys=keys, **values)
    if settings.keys and settings.key_file:
        raise SettingsError("give either key_file or [[keys]] in the config file, not both")
    if not 0 <= settings.port <= 65535:
        raise SettingsError("port must be between 0 and 65535")
    _check_env_allow(settings.env_allow, None)
    if settings.max_commands < 1 or settings.max_total_commands < 1:
        raise SettingsError("max_commands and max_total_commands must be at least 1")
    _check_operations(settings)
    _check_networks(settings.auth_penalty_exempt, "auth_penalty_exempt")
    return settings


def parse_http_address(text: str) -> tuple[str, int]:
    """``IP:PORT`` or ``[IPV6]:PORT`` (``localhost`` is 127.0.0.1) of ``http``.

    Raises:
        SettingsError: not an IP address with a port.
    """
    host, colon, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    host = "127.0.0.1" if host == "localhost" else host
    try:
        ipaddress.ip_address(host)
        port = int(port_text)
        if not colon or not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise SettingsError(f"http must be IP:PORT (like 127.0.0.1:9420), not {text!r}") from None
    return host, port


def _check_networks(networks: tuple[str, ...], name: str) -> None:
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise SettingsError(
                f"{name}: {network!r} is not a network (like 10.0.0.0/8 or ::1/128)"
            ) from None


def _check_operations(settings: Settings) -> None:
    if settings.log_format not in ("text", "json"):
        raise SettingsError("log_format must be text or json")
    if settings.http is not None:
        host, _ = parse_http_address(settings.http)
        if not ipaddress.ip_address(host).is_loopback and not settings.insecure:
            raise SettingsError(
                f"refusing to serve HTTP on {host}: the endpoint has no authentication or TLS; "
                "use a loopback address or pass --insecure"
            )
    for network in settings.announce_networks:
        try:
            ipaddress.IPv4Network(network, strict=False)
        except ValueError:
            raise SettingsError(
                f"announce_networks: {network!r} is not an IPv4 network (like 192.168.1.0/24)"
            ) from None


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/rexecd``, else ``~/.local/state/rexecd``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rexecd"
