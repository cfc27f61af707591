"""Loading ``rexecd`` settings: the config file (TOML, read by pydantic-settings'
TOML source), then the environment and the flags (``load_settings``).

Settings stand in the ``[server]``, ``[limits]`` or ``[commands]`` table (the
table is for people; any setting may stand in any of them), keys in
``[[keys]]``. Values are checked here, strictly (a string is only a string:
``port = "7420"`` is refused, where ``REXECD_PORT=7420`` is text to convert),
so that every error names the file, and the line when TOML gives one.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, TomlConfigSettingsSource

from rexec.server.settings import FILE_SOURCE, SETTINGS, KeySpec, Settings, SettingsError, shown

TABLES = ("server", "limits", "commands")

_STRICT = ConfigDict(strict=True)
_CHECKS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(Annotated[field.annotation, *field.metadata], config=_STRICT)
    for name, field in SETTINGS.items()
}


class SettingsFile(TomlConfigSettingsSource):
    """The settings of one TOML file, checked, as a settings source.

    Raises (on construction, or when called):
        SettingsError: the file is missing, unreadable, not TOML, or holds
            an unknown table or setting or a bad value.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self.path = path
        if not path.exists():
            raise SettingsError(f"config file {path} does not exist")
        try:
            super().__init__(settings_cls, toml_file=path)
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path}: {exc}") from None

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for table_name, table in self.toml_data.items():
            if table_name == "keys":
                values["keys"] = self._keys(table)
            elif table_name in TABLES and isinstance(table, dict):
                for name, value in table.items():
                    if name not in SETTINGS:
                        raise SettingsError(
                            f"{self.path}: unknown setting {name!r} in [{table_name}]"
                        )
                    values[name] = self._check(table_name, name, value)
            else:
                raise SettingsError(f"{self.path}: unknown table [{table_name}]")
        return values

    def _check(self, table_name: str, name: str, value: Any) -> Any:
        try:
            return _CHECKS[name].validate_python(_tuples(value))
        except ValidationError as exc:
            error = exc.errors()[0]
        where = self._where(table_name, name)
        if error["type"] == "value_error":
            raise SettingsError(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        raise SettingsError(f"{where} must be {shown(SETTINGS[name]).kind}")

    def _where(self, table_name: str, name: str) -> str:
        """``FILE:LINE: [table] name`` for a setting; tomllib keeps no
        positions, so the line is found again in the text (the first
        ``name =`` under ``[table]``), and left out if it is not found."""
        key = re.compile(
            rf"""\s*(?:{re.escape(name)}|"{re.escape(name)}"|'{re.escape(name)}')\s*="""
        )
        table = None
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            lines = []
        for number, line in enumerate(lines, 1):
            header = _TABLE_HEADER.match(line)
            if header:
                table = header.group(1).strip().strip("\"'")
            elif table == table_name and key.match(line):
                return f"{self.path}:{number}: [{table_name}] {name}"
        return f"{self.path}: [{table_name}] {name}"

    def _keys(self, tables: Any) -> tuple[KeySpec, ...]:
        if not isinstance(tables, list):
            raise SettingsError(f"{self.path}: keys must be [[keys]] tables")
        keys = tuple(self._key(entry, index) for index, entry in enumerate(tables, 1))
        names = [key.name for key in keys]
        if len(set(names)) != len(names):
            raise SettingsError(f"{self.path}: two [[keys]] have the same name")
        return keys

    def _key(self, entry: Any, index: int) -> KeySpec:
        where = f"{self.path}: [[keys]] #{index}"
        if not isinstance(entry, dict):
            raise SettingsError(f"{where} must be a table")
        try:
            return KeySpec.model_validate({name: _tuples(value) for name, value in entry.items()})
        except ValidationError as exc:
            error = exc.errors()[0]
        name = str(error["loc"][0])
        if error["type"] in ("missing", "string_too_short"):
            raise SettingsError(f'{where} needs {name} = "..."')
        if error["type"] == "extra_forbidden":
            raise SettingsError(f"{where}: unknown rule {name!r}")
        if error["type"] == "value_error":
            raise SettingsError(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        field = KeySpec.model_fields[name]
        raise SettingsError(f"{where}: {name} must be {shown(field).kind}")


#: A TOML table header, ``[name]`` (not an array of tables, ``[[keys]]``).
_TABLE_HEADER = re.compile(r"\s*\[([^\[\]]+)\]\s*(?:#.*)?$")


def _tuples(value: Any) -> Any:
    """TOML arrays as the tuples the settings hold (strict mode takes a tuple
    only as a tuple)."""
    return tuple(value) if isinstance(value, list) else value


def load_settings(flags: Mapping[str, Any], config_file: str | None) -> Settings:
    """Merge the sources by precedence (flags > environment > file > defaults).

    Args:
        flags: values given on the command line, as text (None: not given).
        config_file: path of the TOML file, if any (else ``REXECD_CONFIG``).

    Raises:
        SettingsError: a bad file, value or combination, in one line.
    """
    path = config_file or os.environ.get("REXECD_CONFIG") or None
    given = {name: value for name, value in flags.items() if value is not None and name in SETTINGS}
    token = FILE_SOURCE.set(SettingsFile(Settings, Path(path)) if path else None)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc.errors()[0], given)) from None
    finally:
        FILE_SOURCE.reset(token)


def _one_line(error: Any, given: Mapping[str, Any]) -> str:
    """One line for the first error of a validation: where the value came
    from (a flag, else a variable: the file's values are checked where they
    stand), the setting, and what it must be."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message  # a rule across settings
    name = str(error["loc"][0])
    where = f"--{name.replace('_', '-')}" if name in given else f"REXECD_{name.upper()}"
    if error["type"] == "value_error":
        return f"{where}: {message}"
    return f"{where}: {name} must be {shown(SETTINGS[name]).kind}"
