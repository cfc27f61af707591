"""``rexecd`` settings: one pydantic-settings model, filled from flags,
``REXECD_*`` environment variables and a TOML file.

Precedence, highest first: command-line flags, ``REXECD_*`` variables, the
config file (``--config F`` or ``REXECD_CONFIG``), the defaults below. Every
setting has one name used in all three places: ``kill_grace`` is
``--kill-grace``, ``REXECD_KILL_GRACE`` and ``kill_grace`` in the file's
``[server]``, ``[limits]`` or ``[commands]`` table (the table is for people;
any setting may stand in any of them). Keys and their rules live in
``[[keys]]`` (rexec/server/settings_file.py reads the file and loads
the settings).

Each setting's type says, through its ``Shown`` metadata, how ``--help``
names its value and what an error says it must be; an error is one line
naming where the bad value came from.
"""

from __future__ import annotations

import contextvars
import dataclasses
import ipaddress
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rexec.protocol import Limits
from rexec.server.environment import DEFAULT_ENV_ALLOW, check_exact, check_patterns

DEFAULT_PORT = 7420
#: The default ``host``: both loopback addresses, 127.0.0.1 and ::1.
LOOPBACKS = "localhost"


class SettingsError(Exception):
    """A setting is missing, malformed or inconsistent; one line for a person."""


@dataclasses.dataclass(frozen=True)
class Shown:
    """How a setting's value is named in ``--help`` (``metavar``) and what an
    error says it must be (``kind``)."""

    metavar: str
    kind: str


Seconds = Annotated[
    float, Field(ge=0, allow_inf_nan=False), Shown("SECONDS", "a finite number ≥ 0")
]
Count = Annotated[int, Field(ge=0), Shown("N", "a whole number ≥ 0")]
Positive = Annotated[int, Field(ge=1), Shown("N", "a whole number, at least 1")]
Bytes = Annotated[int, Field(ge=0), Shown("BYTES", "a whole number ≥ 0")]
Port = Annotated[int, Field(ge=0, le=65535), Shown("PORT", "a whole number between 0 and 65535")]
Switch = Annotated[bool, Shown("", "true or false")]
File = Annotated[str | None, Shown("FILE", "a string")]
Directory = Annotated[str | None, Shown("DIR", "a string")]
Directories = Annotated[tuple[str, ...], Shown("DIR", "a list of strings")]


def _network_check(setting: str, parse: Callable[..., object], kind: str) -> Callable[[str], str]:
    """A validator of one network (CIDR) of ``setting``: one that ``parse``
    accepts, else refused as "not ``kind``"."""

    def check(value: str) -> str:
        try:
            parse(value, strict=False)
        except ValueError:
            raise ValueError(f"{setting}: {value!r} is not {kind}") from None
        return value

    return check


_IPV4_NETWORK = _network_check(
    "announce_networks", ipaddress.IPv4Network, "an IPv4 network (like 192.168.1.0/24)"
)
_ANY_NETWORK = _network_check(
    "auth_penalty_exempt", ipaddress.ip_network, "a network (like 10.0.0.0/8 or ::1/128)"
)
Networks = Annotated[
    tuple[Annotated[str, AfterValidator(_IPV4_NETWORK)], ...], Shown("CIDR", "a list of strings")
]
AnyNetworks = Annotated[
    tuple[Annotated[str, AfterValidator(_ANY_NETWORK)], ...], Shown("CIDR", "a list of strings")
]


def _env_pattern(pattern: str) -> str:
    check_patterns((pattern,))  # an EnvPatternError is a ValueError, with its reason
    return pattern


EnvPatterns = Annotated[
    tuple[Annotated[str, AfterValidator(_env_pattern)], ...], Shown("NAME", "a list of strings")
]


def _allow_argv_entry(prefix: str) -> str:
    try:
        words = shlex.split(prefix)
    except ValueError:
        raise ValueError(f"allow_argv entry {prefix!r} has unbalanced quotes") from None
    if not [word for word in words if word]:
        raise ValueError("allow_argv entries must not be empty")
    return prefix


class KeySpec(BaseModel):
    """One ``[[keys]]`` table: a named key and what its holder may do, like the
    options of an OpenSSH ``authorized_keys`` line. Absent rules allow."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1), Shown("NAME", 'a name: name = "..."')]
    file: Annotated[str, Field(min_length=1), Shown("FILE", 'a key file: file = "..."')]
    #: argv prefixes, words split as a shell would; empty: any.
    allow_argv: Annotated[
        tuple[Annotated[str, AfterValidator(_allow_argv_entry)], ...],
        Shown("", "a list of strings"),
    ] = ()
    allow_shell: Switch = True
    #: unset: true, but false when allow_argv is set: on a terminal, a pager
    #: (git log, journalctl, man) or an editor runs any command typed at it.
    allow_pty: Switch | None = None
    #: unset: true, but false when allow_argv is set (as shell strings are):
    #: a key that may run some programs must not be able to replace them.
    allow_transfer: Switch | None = None
    cwd_roots: Directories = ()
    max_timeout: Seconds = 0.0
    #: Names or NAME_* patterns its holder may set, its whole list (exact
    #: names only with allow_argv); None: the server's list, or none with
    #: allow_argv (rexec/server/environment.py).
    env_allow: Annotated[
        tuple[Annotated[str, AfterValidator(_env_pattern)], ...] | None,
        Shown("", "a list of strings"),
    ] = None

    @field_validator("env_allow")
    @classmethod
    def _exact_names_for_programs(
        cls, env_allow: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if env_allow and info.data.get("allow_argv"):
            check_exact(env_allow)
        return env_allow


def _setting(default: Any, help: str) -> Any:
    return Field(default=default, description=help)


class Settings(BaseSettings):
    """Every operational setting of the daemon, with its default and reason."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_default=False)

    # Listening.
    host: Annotated[str, Shown("ADDRESS", "a string")] = _setting(
        LOOPBACKS, "address to listen on (localhost: both 127.0.0.1 and ::1)"
    )
    port: Port = _setting(DEFAULT_PORT, "TCP port (0 picks a free one)")
    insecure: Switch = _setting(False, "allow a non-loopback address without TLS")
    tls_cert: File = _setting(None, "TLS certificate chain (PEM)")
    tls_key: File = _setting(None, "TLS private key (PEM)")
    tls_client_ca: File = _setting(None, "require client certificates signed by this CA (PEM)")
    # Identity and records.
    key_file: File = _setting(None, "shared key file, created (0600) if missing")
    audit_log: File = _setting(
        None, "append JSON audit lines to this file ('-': stderr); see README, 'The server'"
    )
    audit_timeout: Annotated[
        float, Field(ge=0.01, allow_inf_nan=False), Shown("SECONDS", "a finite number ≥ 0.01")
    ] = _setting(
        5.0, "seconds an audit record may wait to be written before new commands are refused"
    )
    audit_buffer: Annotated[int, Field(ge=4096), Shown("BYTES", "a whole number ≥ 4096")] = (
        _setting(4 * 1024 * 1024, "bytes of audit records held while the log is slow or stuck")
    )
    state_dir: Directory = _setting(
        None, "where running process groups are recorded, so a restart after a crash can end them"
    )
    # Deadlines. Small enough that a stuck peer frees its slot soon, large
    # enough for a slow network.
    auth_timeout: Seconds = _setting(10.0, "seconds a new connection has to authenticate")
    frame_timeout: Seconds = _setting(
        10.0, "seconds a frame may take from its first byte to its last, body included"
    )
    idle_timeout: Seconds = _setting(
        300.0, "seconds an authenticated connection may stay silent with nothing running (0: never)"
    )
    stall_timeout: Seconds = _setting(
        60.0, "seconds a client may leave output unread before its commands are ended (0: never)"
    )
    shutdown_grace: Seconds = _setting(10.0, "seconds running commands get to finish on SIGTERM")
    kill_grace: Seconds = _setting(2.0, "seconds from SIGTERM to SIGKILL")
    drain_grace: Seconds = _setting(2.0, "seconds to keep reading output after a command exits")
    # Admission (rexec/server/admission.py): like sshd's MaxStartups and
    # PerSourcePenalties, except that nothing is refused before a key is proven.
    max_connections: Count = _setting(512, "authenticated connections in all")
    max_connections_per_source: Count = _setting(
        64, "authenticated connections from one address with one key"
    )
    max_connections_per_key: Count = _setting(
        128, "authenticated connections with one key, so one key can't fill the server (0: no cap)"
    )
    max_unauthenticated: Positive = _setting(
        256, "connections still authenticating; beyond, the oldest of the busiest address is closed"
    )
    auth_failures: Count = _setting(
        5, "failed authentications from one address before each further one is answered late"
    )
    auth_failure_window: Seconds = _setting(60.0, "seconds over which failures are counted")
    auth_penalty: Seconds = _setting(
        30.0, "longest delay before a failed authentication is answered (1 s, doubling)"
    )
    auth_penalty_exempt: AnyNetworks = _setting(
        (), "networks whose failed authentications are never delayed"
    )
    # Commands.
    max_commands: Positive = _setting(Limits().max_commands, "running commands per connection")
    max_total_commands: Positive = _setting(256, "running commands in all")
    max_commands_per_key: Count = _setting(
        128, "running commands and transfers of one key when there are several (0: no cap)"
    )
    max_argv_bytes: Bytes = _setting(128 * 1024, "bytes of argv or shell string of one command")
    max_env_bytes: Bytes = _setting(
        64 * 1024, "bytes of client-supplied environment of one command"
    )
    max_timeout: Seconds = _setting(0.0, "longest wall time of a command (0: no limit)")
    max_output: Bytes = _setting(0, "most output bytes of one command (0: no limit)")
    run_as: Annotated[str | None, Shown("USER", "a string")] = _setting(
        None, "user to run commands as (the daemon must be root)"
    )
    cwd_roots: Directories = _setting((), "directories commands may run in (empty: anywhere)")
    env_allow: EnvPatterns = _setting(
        (),
        f"environment names (patterns) a client may set, besides {', '.join(DEFAULT_ENV_ALLOW)}; "
        "for keys without allow_argv or an env_allow of their own",
    )
    rlimit_cpu: Count = _setting(0, "CPU seconds per command (0: unlimited)")
    rlimit_fsize: Bytes = _setting(0, "largest file a command may write (0: unlimited)")
    rlimit_nofile: Count = _setting(0, "open files per command process (0: inherited)")
    rlimit_nproc: Count = _setting(0, "processes per user, applied to commands (0: unlimited)")
    # Operations (rexec/ops/operations.py): all off unless asked for.
    http: Annotated[str | None, Shown("IP:PORT", "a string")] = _setting(
        None, "serve /healthz and /metrics over HTTP here (off loopback needs --insecure)"
    )
    announce: Switch = _setting(False, "answer UDP discovery probes (rexec discover)")
    announce_port: Port = _setting(7421, "UDP port discovery probes come to (0 picks a free one)")
    announce_networks: Networks = _setting(
        ("127.0.0.0/8",), "IPv4 networks whose discovery probes are answered"
    )
    log_format: Annotated[Literal["text", "json"], Shown("FORMAT", "text or json")] = _setting(
        "text", "format of rexecd's own stderr messages"
    )
    # Keys with their rules, from the file's [[keys]] only; empty means the one
    # key of key_file, unrestricted.
    keys: tuple[KeySpec, ...] = _setting((), "authorised keys ([[keys]] tables)")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.keys and self.key_file:
            raise ValueError("give either key_file or [[keys]] in the config file, not both")
        if self.http is not None:
            host, _ = parse_http_address(self.http)
            if not ipaddress.ip_address(host).is_loopback and not self.insecure:
                raise ValueError(
                    f"refusing to serve HTTP on {host}: the endpoint has no authentication or "
                    "TLS; use a loopback address or pass --insecure"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags are the init arguments; the file is the one load_settings was given.
        settings_file = FILE_SOURCE.get()
        if settings_file is None:
            return init_settings, _Environment(settings_cls)
        return init_settings, _Environment(settings_cls), settings_file


#: The file source of the settings being loaded (set by
#: rexec.server.settings_file.load_settings).
FILE_SOURCE: contextvars.ContextVar[PydanticBaseSettingsSource | None] = contextvars.ContextVar(
    "rexecd_settings_file", default=None
)

SETTINGS = {name: field for name, field in Settings.model_fields.items() if name != "keys"}


def shown(field: FieldInfo) -> Shown:
    """The ``Shown`` metadata of a setting's (or a key rule's) type."""
    return next(item for item in field.metadata if isinstance(item, Shown))


def is_list(field: FieldInfo) -> bool:
    """Whether a setting takes several values (comma-separated in a variable,
    a repeated flag, a TOML list)."""
    return "list" in shown(field).kind


class _Environment(EnvSettingsSource):
    """``REXECD_NAME`` for every setting but ``keys``; a list is
    comma-separated, a value is text for pydantic to convert."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="REXECD_", case_sensitive=False)

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        if value is None or field_name not in SETTINGS:
            return None
        if is_list(field):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value


def parse_http_address(text: str) -> tuple[str, int]:
    """``IP:PORT`` or ``[IPV6]:PORT`` (``localhost`` is 127.0.0.1) of ``http``.

    Raises:
        ValueError: not an IP address with a port.
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
        raise ValueError(f"http must be IP:PORT (like 127.0.0.1:9420), not {text!r}") from None
    return host, port


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/rexecd``, else ``~/.local/state/rexecd``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rexecd"


def audit_log_path(settings: Settings) -> Path | None:
    """Where the audit log goes; None for stderr (``audit_log = "-"``).

    By default its own file, never mixed with rexecd's messages on stderr:
    ``$LOGS_DIRECTORY/audit.jsonl`` under systemd (``LogsDirectory=rexecd``:
    /var/log/rexecd), else ``audit.jsonl`` in the default state directory.
    """
    if settings.audit_log == "-":
        return None
    if settings.audit_log is not None:
        return Path(settings.audit_log)
    logs = os.environ.get("LOGS_DIRECTORY")
    # systemd may list several directories, separated by colons: the first is ours.
    base = Path(logs.split(":")[0]) if logs else default_state_dir()
    return base / "audit.jsonl"
