"""What a ``rexec shell`` session remembers between lines.

The server keeps nothing between commands: each line is a new ``/bin/sh -c``.
The session's place and settings live here, on the client, and go with every
``run``: the working directory (``cwd``), the variables set by ``export``
(``env``, added to the server's base environment), the base variables hidden
by ``unset`` (the protocol can only add names, so each line starts with an
``unset -v`` of them), and the default timeout. A reconnect keeps all of it.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from ..result import ExitStatus


@dataclasses.dataclass
class RemoteIdentity:
    """Who and where the session is on the server, for the prompt."""

    user: str = ""
    host: str = ""
    home: str = ""


def status_label(status: ExitStatus | int) -> str | None:
    """How the prompt shows an outcome: None for success, else the exit code,
    the signal name (``SIGINT``), ``timeout`` or ``lost``."""
    if isinstance(status, int):
        return str(status) if status else None
    if status.connection_lost:
        return "lost"
    if status.timed_out:
        return "timeout"
    if status.signal is not None:
        return status.signal_name or f"signal {status.signal}"
    return str(status.exit_code) if status.exit_code else None


@dataclasses.dataclass
class SessionState:
    """The session's place and settings on the server (see the module doc)."""

    cwd: str | None = None
    oldpwd: str | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    unset: set[str] = dataclasses.field(default_factory=set)
    timeout: float | None = None
    identity: RemoteIdentity = dataclasses.field(default_factory=RemoteIdentity)
    #: The last line's status as a number (what ``exit`` leaves with) …
    last_status: int = 0
    #: … and as the prompt shows it (None: success).
    last_label: str | None = None

    def record(self, status: ExitStatus | int) -> int:
        """Remember how the last line ended; return it as a number."""
        self.last_status = status if isinstance(status, int) else status.returncode
        self.last_label = status_label(status)
        return self.last_status

    def command_line(self, line: str) -> str:
        """The shell string that runs ``line`` in this session."""
        if not self.unset:
            return line
        names = " ".join(shlex.quote(name) for name in sorted(self.unset))
        return f"unset -v {names}\n{line}"

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments of ``ClientConnection.start`` for this session."""
        return {"cwd": self.cwd, "env": dict(self.env), "timeout": self.timeout}

    def display_cwd(self) -> str:
        """The working directory for the prompt, with the home shown as ``~``."""
        cwd, home = self.cwd or "?", self.identity.home.rstrip("/")
        if home and (cwd == home or cwd.startswith(home + "/")):
            return "~" + cwd[len(home) :]
        return cwd

    def set_variable(self, name: str, value: str | None) -> None:
        """Record ``export NAME=VALUE`` (``value`` None: ``unset NAME``, where
        the name stays hidden only if the server's base environment has it —
        see ``hide``)."""
        if value is None:
            self.env.pop(name, None)
        else:
            self.env[name] = value
            self.unset.discard(name)

    def hide(self, name: str) -> None:
        """Hide a base-environment name from every later line."""
        self.env.pop(name, None)
        self.unset.add(name)
