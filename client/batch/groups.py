"""``@group`` names in target specs, from a groups file as ClusterShell's
flat ``groups`` file (``local.cfg``) writes them::

    # name: node set (spaces or commas between parts; @other groups allowed)
    web: web[01-20]
    db: db[1-3]:7000
    all: @web,@db

The file is ``--groups-file FILE``, else ``$REXEC_GROUPS_FILE``, else
``$XDG_CONFIG_HOME/rexec/groups`` (``~/.config/rexec/groups``); it is read
only when a spec names a group. ``@discover`` is not a group: it probes the
network (``rexec_client.discovery``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .nodeset import split_top_level

_LINE = re.compile(r"\s*([0-9A-Za-z_.-]+)\s*:(.*)")
#: Groups may name groups; deeper than this is a mistake, not a fleet.
_MAX_DEPTH = 16


class GroupError(ValueError):
    """An unknown group, a group cycle, or a groups file that can't be read."""


def default_groups_path() -> Path:
    explicit = os.environ.get("REXEC_GROUPS_FILE")
    if explicit:
        return Path(explicit)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "rexec" / "groups"


def read_groups(path: Path) -> dict[str, str]:
    """The groups of ``path``: name → node set (comma-separated).

    Raises:
        GroupError: the file can't be read, or a line is not ``name: nodes``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise GroupError(f"cannot read groups file {str(path)!r}: {reason}") from None
    groups: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        match = _LINE.fullmatch(content)
        if match is None:
            raise GroupError(f"{path}:{number}: expected 'name: nodes'")
        groups[match.group(1)] = ",".join(match.group(2).replace(",", " ").split())
    return groups


class Groups:
    """Expands ``@name`` parts of specs, reading the groups file on first use."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_groups_path()
        self._groups: dict[str, str] | None = None

    def _lookup(self, name: str) -> str:
        if self._groups is None:
            if not self.path.exists():
                raise GroupError(
                    f"unknown group @{name}: no groups file at {self.path} (see --groups-file)"
                )
            self._groups = read_groups(self.path)
        try:
            return self._groups[name]
        except KeyError:
            raise GroupError(f"unknown group @{name} (not in {self.path})") from None

    def expand(self, spec: str, _depth: int = 0) -> str:
        """``spec`` with every ``@name`` part replaced by its node set."""
        if "@" not in spec:
            return spec
        if _depth > _MAX_DEPTH:
            raise GroupError(f"groups nest deeper than {_MAX_DEPTH} (a cycle?) in {self.path}")
        parts = []
        for part in split_top_level(spec):
            if part.startswith("@"):
                part = self.expand(self._lookup(part[1:]), _depth + 1)
            parts.append(part)
        return ",".join(parts)
