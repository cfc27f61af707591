"""The ``rexec`` program: run commands on rexecd servers.

Each subcommand lives in its own module that defines ``register(subparsers)``;
it adds its parser and sets ``handler`` (a function from the parsed arguments
to an exit status). To add one, write the module and list it in
``SUBCOMMANDS``. Only the module of the subcommand being run is imported: a
subcommand never pays for what another one uses (``rexec run`` does not load
the shell's prompt_toolkit, nor the batch engine).

By default, everything after the first ``--`` on the command line is the
remote command: it is never parsed as rexec options, and a subcommand finds
it in ``args.remote_command`` (None without ``--``). Subcommands that take one
set ``accepts_command=True`` in their defaults. A module that reads its
command line otherwise (``rexec run HOST CMD ARG...``, as ssh does) defines
``parse_arguments(parser, argv)`` and returns the parsed namespace itself.

Whatever a subcommand does, a standard output closed by its reader
(``rexec ... | head``) ends it quietly with status 141, and Ctrl-C with 130:
never a traceback. A standard output closed before rexec starts (``>&-``) is
one line and status 255 before anything runs (see ``base``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import sys
from collections.abc import Iterator, Sequence

import rexec

from .base import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    ArgumentParser,
    discard_stdout,
    fail,
    guard_standard_streams,
)

#: Each subcommand's module and its line in ``rexec --help``, in that order.
SUBCOMMANDS = {
    "run": ("rexec_client.cli.run", "run one command on a server"),
    "shell": ("rexec_client.cli.shell", "an interactive shell on a server"),
    "put": ("rexec_client.cli.put", "copy local files to a server"),
    "get": ("rexec_client.cli.get", "copy files from a server"),
    "batch": ("rexec_client.cli.batch", "run many commands on many servers"),
    "discover": (
        "rexec_client.cli.discover",
        "find rexecd servers on the local network (UDP broadcast)",
    ),
    "keygen": ("rexec_client.cli.keygen", "make or import the shared key file"),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The ``rexec`` parser. Only the subcommand ``chosen`` (if any) gets its
    real parser, from its module; the others are listed by name and help."""
    return _build(chosen)[0]


def _build(
    chosen: str | None,
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and the subcommands' parsers by name."""
    parser = ArgumentParser(
        prog="rexec",
        description="Run commands on a remote machine that runs rexecd.",
        epilog="Run 'rexec COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"rexec {rexec.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, (module_name, help_line) in SUBCOMMANDS.items():
        if name == chosen:
            importlib.import_module(module_name).register(subparsers)
        else:
            subparsers.add_parser(name, help=help_line)
    return parser, subparsers.choices


def split_remote_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split ``argv`` at its first ``--``: rexec's own arguments, and the remote
    command (None when there is no ``--``)."""
    if "--" not in argv:
        return argv, None
    index = argv.index("--")
    return argv[:index], argv[index + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rexec`` console script; returns the exit status."""
    if guard_standard_streams():
        return fail(
            "standard output is closed: the output would be lost "
            "(to discard it, redirect it to /dev/null)",
            EXIT_FAILURE,
        )
    try:
        try:
            return _main(list(sys.argv[1:] if argv is None else argv))
        finally:
            # Here, not at the interpreter's exit, where a failure can only
            # be printed as "Exception ignored".
            sys.stdout.flush()
    except BrokenPipeError:
        # Our reader went away (`rexec ... | head`): as a program killed by
        # SIGPIPE would, stop without a word.
        discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _main(argv: list[str]) -> int:
    with _collector_paused():
        args = _parse(argv)
    status: int = args.handler(args)
    return status


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Start up (import the subcommand, parse) without the cyclic garbage
    collector, then freeze what start-up made.

    Start-up allocates some 30,000 objects (modules, classes, functions, the
    message models) that live until the program exits: the collector
    traversed them about 60 times while they were imported and again at
    exit, about 30 ms of the 200 ms of CPU of a cold ``rexec run HOST true``.
    ``gc.freeze`` takes them out of every later collection, the one at exit
    included. The cyclic garbage start-up leaves (about 800 objects, 170 KiB:
    the parsers, classes made and dropped while importing) is kept rather
    than collected, once.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line, its subcommand's module imported."""
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    parser, subparsers = _build(chosen)
    module = sys.modules[SUBCOMMANDS[chosen][0]] if chosen else None
    if module is not None and hasattr(module, "parse_arguments"):
        args: argparse.Namespace = module.parse_arguments(subparsers[chosen], argv[1:])
    else:
        own, remote = split_remote_command(argv)
        args, unknown = parser.parse_known_args(own)
        if unknown:
            # Point at the subcommand's --help, where its options are.
            where = subparsers[chosen] if chosen else parser
            where.error(f"unrecognized arguments: {' '.join(unknown)}")
        if remote is not None and not getattr(args, "accepts_command", False):
            parser.error("this command takes no remote command after '--'")
        args.remote_command = remote
    return args
