"""``rexecd``'s command line: one flag per setting (rexec/server/settings.py),
grouped as the README's "Configuration" groups them.

Every flag defaults to None ("not given"), so that the environment and the
config file fill what the command line leaves; values stay text for the
settings model to convert, so a bad value gets the same message from a flag
as from a variable. A usage error is one line and exit status 1, as every
other start-up error.
"""

from __future__ import annotations

import argparse
from typing import Any, Literal, NoReturn, get_args, get_origin

from rexec import __version__
from rexec.keyfile import default_key_path
from rexec.server.settings import DEFAULT_PORT, SETTINGS, is_list, shown

#: The exit status of every failed start, usage errors included.
EXIT_STARTUP = 1

#: The --help sections, each with the first setting it holds.
_GROUPS = {
    "host": "listening",
    "key_file": "identity and records",
    "auth_timeout": "deadlines (seconds)",
    "max_connections": "admission",
    "max_commands": "commands",
    "http": "operations",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_STARTUP, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _default_text(name: str, default: Any) -> str:
    if name == "key_file":
        return f" (default: {default_key_path()})"
    if name == "audit_log":
        return (
            " (default: $LOGS_DIRECTORY/audit.jsonl under systemd, else"
            " $XDG_STATE_HOME/rexecd/audit.jsonl)"
        )
    if name == "state_dir":
        return " (default: $XDG_STATE_HOME/rexecd)"
    if default in (None, (), False):
        return ""
    if isinstance(default, tuple):
        return f" (default: {','.join(default)})"
    if isinstance(default, float) and default.is_integer():
        return f" (default: {int(default)})"
    return f" (default: {default})"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``rexecd``'s flags; ``parse_args`` gives each setting's
    flag as text, or None when it was not given."""
    parser = _Parser(
        prog="rexecd",
        usage="%(prog)s [--config FILE] [--check-config | --init-tls DIR] [SETTING FLAGS]",
        description=(
            "Run commands for authenticated rexec clients. Listens on 127.0.0.1 and ::1 by "
            "default; any other address needs TLS (or --insecure). Clients prove they hold the "
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
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config file (see README, 'Configuration')"
    )
    parser.add_argument(
        "--check-config", action="store_true",
        help="check the settings, keys and TLS files, print the result and exit",
    )  # fmt: skip
    parser.add_argument(
        "--init-tls", metavar="DIR",
        help="make a private CA, a server and a client certificate in DIR (missing files only) "
        "and exit; see README 'A second machine'",
    )  # fmt: skip
    parser.add_argument(
        "--tls-name", action="append", default=[], metavar="NAME",
        help="with --init-tls: a DNS name or IP address clients use to reach this server "
        "(repeatable; default: this host's name and the loopback addresses)",
    )  # fmt: skip
    group = parser.add_argument_group()
    for name, field in SETTINGS.items():
        if name in _GROUPS:
            group = parser.add_argument_group(_GROUPS[name])
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description}{_default_text(name, field.default)}"
        if field.annotation is bool:
            group.add_argument(flag, action="store_const", const=True, default=None, help=help_text)
        elif is_list(field):
            group.add_argument(
                flag, action="append", metavar=shown(field).metavar, default=None,
                help=help_text + "; repeatable",
            )  # fmt: skip
        elif get_origin(field.annotation) is Literal:
            choices = get_args(field.annotation)
            group.add_argument(flag, choices=choices, default=None, help=help_text)
        else:
            group.add_argument(flag, metavar=shown(field).metavar, default=None, help=help_text)
    return parser
