"""The ``rexec`` program: run commands on rexecd servers.

Each subcommand lives in its own module (``cmd_<name>.py``) that defines
``register(subparsers)``; it adds its parser and sets ``handler`` (a function
from the parsed arguments to an exit status). To add one, write the module and
list it in ``SUBCOMMANDS``.

Everything after the first ``--`` on the command line is the remote command:
it is never parsed as rexec options, and a subcommand finds it in
``args.remote_command`` (None without ``--``). Subcommands that take one set
``accepts_command=True`` in their defaults.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import rexec

from .common import ArgumentParser

#: Modules of the subcommands, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "rexec_client.cli.run",
    "rexec_client.cli.shell",
    "rexec_client.cli.put",
    "rexec_client.cli.get",
    "rexec_client.cli.batch",
    "rexec_client.cli.discover",
)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="rexec",
        description="Run commands on a remote machine that runs rexecd.",
        epilog="Run 'rexec COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"rexec {rexec.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def split_remote_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``argv`` at its first ``--``: rexec's own arguments, and the remote
    command (None when there is no ``--``)."""
    if "--" not in argv:
        return argv, None
    index = argv.index("--")
    return argv[:index], argv[index + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rexec`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, remote = split_remote_command(argv)
    parser = build_parser()
    args = parser.parse_args(own)
    if remote is not None and not getattr(args, "accepts_command", False):
        parser.error("this command takes no remote command after '--'")
    args.remote_command = remote
    status: int = args.handler(args)
    return status

