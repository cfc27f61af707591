"""What a reload (SIGHUP) reads again, and what it tells the operator about
settings it can't apply: those fixed at start-up (``RESTART_ONLY``), and
values the config file changed that a flag or a ``REXECD_*`` variable
overrides (they win over the file, now and after a restart alike)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from rexec.server.config import ServerConfig
from rexec.server.settings import Settings
from rexec.server.settings_file import SettingsFile, load_settings

#: Settings a reload can't apply: they are sockets, files or the process's
#: identity, fixed at start-up (the audit log's limits are its writer's).
RESTART_ONLY = (
    "host", "port", "insecure", "tls_cert", "tls_key", "tls_client_ca", "audit_log",
    "audit_timeout", "audit_buffer", "state_dir", "run_as", "http", "announce", "announce_port",
    "announce_networks", "log_format",
)  # fmt: skip


class Rebuilt(NamedTuple):
    """A reload's new config and the lines about file values it ignores."""

    config: ServerConfig
    overridden: list[str]


class Rebuild:
    """The config a fresh start would build now, from the same flags,
    environment and config file (call it on SIGHUP).

    Args:
        build: turns settings into a config (rexec.daemon.build_config).
        flags: the command line's values (None: not given).
        config_file: ``--config``, if given (else ``REXECD_CONFIG``).
    """

    def __init__(
        self,
        build: Callable[[Settings], ServerConfig],
        flags: Mapping[str, Any],
        config_file: str | None,
    ) -> None:
        self._build = build
        self._flags = flags
        self._config_file = config_file
        path = config_file or os.environ.get("REXECD_CONFIG")
        self._path = Path(path) if path else None
        self._file = self._file_values()

    def __call__(self) -> Rebuilt:
        """Raises: whatever loading the settings or building the config does."""
        config = self._build(load_settings(self._flags, self._config_file))
        before, self._file = self._file, self._file_values()
        overridden = [
            f"{name} = {shown_value(value)} in {self._path} is not applied: "
            f"{self._source(name)} sets {shown_value(getattr(config.settings, name))} "
            "and wins over the file"
            for name, value in self._file.items()
            if name != "keys"
            and before.get(name, _UNSET) != value
            and getattr(config.settings, name) != value
        ]
        return Rebuilt(config, overridden)

    def _file_values(self) -> dict[str, Any]:
        if self._path is None:
            return {}
        try:
            return SettingsFile(Settings, self._path)()
        except Exception:  # noqa: BLE001  load_settings has said what is wrong
            return {}

    def _source(self, name: str) -> str:
        if self._flags.get(name) is not None:
            return f"--{name.replace('_', '-')}"
        return f"REXECD_{name.upper()}"


_UNSET = object()


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """One line per restart-only setting whose value changed."""
    return [
        f"{name} changed {shown_value(getattr(old, name))} -> {shown_value(getattr(new, name))}: "
        "needs a restart, not applied"
        for name in RESTART_ONLY
        if getattr(new, name) != getattr(old, name)
    ]


def shown_value(value: Any) -> str:
    """A setting's value as the config file would spell it."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(shown_value(item) for item in value) + "]"
    return str(value)
