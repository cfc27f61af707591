"""``rexec put``: copy a local file (or standard input, or with ``-r`` a
tree) to a server.

See ``transfers`` for the decisions shared with ``rexec get``.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import Any

from ..connection import ClientConnection
from ..transfer import TransferError, local_error, put, remote_path
from .remote_tree import (
    TreeFailed,
    argv_batches,
    remote_basename,
    remote_is_directory,
    remote_join,
    remote_parent,
    remote_run,
)
from .transfers import Reporter, fail, register_transfer, run_transfer, usage_problem

DESCRIPTION = """\
Copy LOCAL (a file, '-' for standard input, a directory with -r) to REMOTE on
a rexecd server: streamed with bounded memory, written there under a
temporary name and renamed into place only once its size and sha256 are
checked (a failed copy never leaves a half file), with the local file's mode.
REMOTE may be an existing directory (the file keeps its name); relative
REMOTE paths, '~' and '~/PATH' are relative to the server account's home.
"""

#: What follows HOST[:PORT]: (name, metavar, help).
OPERANDS = (
    ("local", "LOCAL", "the file ('-': stdin; a directory with -r)"),
    ("remote", "REMOTE", "the target path on the server"),
)

EXAMPLES = """
examples:
  rexec put server:7420 build.tar.gz /srv/releases/
  rexec put server ./report.pdf 'docs/Q3 report.pdf'
  tar czf - src | rexec put server - '~/src.tar.gz'
  rexec put -r server ./site /var/www        # makes /var/www/site
  rexec put --resume server big.iso /srv/    # run again after an interruption
"""

#: Creates symbolic links given as TARGET PATH pairs, replacing what is there.
_LINK_SCRIPT = 'while [ $# -gt 1 ]; do ln -sfn -- "$1" "$2" || exit 1; shift 2; done'
#: Creates the directories given, parents first, refusing to go through a
#: symbolic link already there (nothing is written through one).
_MKDIR_SCRIPT = (
    'for d; do if [ -L "$d" ]; then echo "$d: a symbolic link is in the way" >&2; exit 1; fi; '
    'if [ -e "$d" ] && [ ! -d "$d" ]; then echo "$d: not a directory" >&2; exit 1; fi; '
    'mkdir -p -- "$d" || exit 1; done'
)


def register(subparsers: Any) -> None:
    help_line = "copy a file or directory to a server"
    register_transfer(subparsers, "put", help_line, DESCRIPTION, EXAMPLES, OPERANDS, main)


def main(args: argparse.Namespace) -> int:
    # Reported before connecting: nothing to send.
    problem = usage_problem(args, "standard input")
    if problem is not None:
        return problem
    if args.local == "-":
        return run_transfer(args, _transfer)
    try:
        os.stat(args.local)
    except OSError as exc:
        return fail(f"{args.local}: {local_error(exc)}", 1)
    if os.path.isdir(args.local) and not args.recursive:
        return fail(f"{args.local}: is a directory (use -r to copy a tree)", 1)
    return run_transfer(args, _transfer)


async def _transfer(conn: ClientConnection, args: argparse.Namespace, reporter: Reporter) -> None:
    if args.local != "-" and os.path.isdir(args.local):
        await _put_tree(conn, args, reporter)
    else:
        await put_one(conn, args.local, args.remote, reporter, args,
                      retry_into_directory=args.local != "-")  # fmt: skip


async def put_one(
    conn: ClientConnection,
    local: str,
    remote: str,
    reporter: Reporter,
    args: argparse.Namespace,
    *,
    retry_into_directory: bool,
) -> None:
    """Put one file ('-': standard input), reporting its outcome; with
    ``retry_into_directory``, a REMOTE that is a directory receives the
    file under its local name."""
    name = os.path.basename(local.rstrip(os.sep)) or local
    if retry_into_directory and remote.endswith("/"):
        remote, retry_into_directory = remote_join(remote, name), False
    source = sys.stdin.buffer if local == "-" else local
    options = {
        "preserve_mtime": args.preserve, "resume": args.resume,
        "stall_timeout": args.stall_timeout,
    }  # fmt: skip
    try:
        try:
            result = await put(conn, source, remote, progress=reporter.progress(name), **options)
        except TransferError as exc:
            if not (retry_into_directory and exc.code == "file.is_directory"):
                raise
            remote = remote_join(remote, name)
            result = await put(conn, source, remote, progress=reporter.progress(name), **options)
    except TransferError as exc:
        reporter.failed(f"{local} -> {remote}", exc)
        return
    reporter.done("sent", name, result)


async def _put_tree(conn: ClientConnection, args: argparse.Namespace, reporter: Reporter) -> None:
    local = args.local.rstrip(os.sep) or os.sep
    remote = remote_path(args.remote)
    # scp -r: into an existing directory, as a copy under the same name.
    if await remote_is_directory(conn, remote):
        base, name = remote, os.path.basename(os.path.abspath(local))
    else:
        base, name = remote_parent(remote), remote_basename(remote)
    if name in ("", ".", ".."):
        raise TreeFailed(f"{args.remote}: not a name for the copy of {args.local}")
    # Helpers run in ``base`` (resolved by the server within the roots) on
    # paths relative to it; files are put at the same paths from the top.
    directories: list[str] = [name]
    files: list[tuple[str, str]] = []
    links: list[str] = []  # TARGET, PATH pairs
    # Links are not followed (followlinks=False lists a link to a directory
    # among the directories, but does not enter it): each is sent as a link.
    for root, dirnames, filenames in os.walk(local):
        relative = os.path.relpath(root, local)
        remote_root = name if relative == "." else remote_join(name, relative.replace(os.sep, "/"))
        for entry in sorted(dirnames + filenames):
            path = os.path.join(root, entry)
            if os.path.islink(path):
                links += [os.readlink(path), remote_join(remote_root, entry)]
            elif entry in dirnames:
                directories.append(remote_join(remote_root, entry))
            elif _is_special(path):
                reporter.passed_over(path, "not a regular file (a FIFO, socket or device)")
            else:
                files.append((path, remote_join(remote_root, entry)))
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(root, d)))
    for batch in argv_batches(directories):
        status, error, _ = await remote_run(conn, ["sh", "-c", _MKDIR_SCRIPT, "sh", *batch],
                                            "mkdir", cwd=base)  # fmt: skip
        if status != 0:
            raise TreeFailed(_mkdir_failure(args.remote, base, name, error))
    for local_path, remote_file in files:
        await put_one(conn, local_path, remote_join(base, remote_file), reporter, args,
                      retry_into_directory=False)  # fmt: skip
    for batch in argv_batches(links, per=2):
        status, error, _ = await remote_run(conn, ["sh", "-c", _LINK_SCRIPT, "sh", *batch], "ln",
                                            cwd=base)  # fmt: skip
        if status != 0:
            raise TreeFailed(f"{args.remote}: could not create the remote links: {error}")
        for target, path in zip(batch[::2], batch[1::2], strict=True):
            reporter.say(f"link {remote_join(base, path)} -> {target}")


def _mkdir_failure(remote: str, base: str, name: str, error: str) -> str:
    """The one line for ``_MKDIR_SCRIPT``'s failure (its last stderr line
    ``error``): the directory in the way named as the user would (REMOTE for
    the top of the tree), what is wrong, and a code."""
    for reason in ("not a directory", "a symbolic link is in the way"):
        path = error.removesuffix(f": {reason}")
        if path != error:
            shown = remote if path == name else remote_join(base, path)
            return f"{shown}: {reason} (file.failed)"
    return f"{remote}: could not create the remote directories: {error} (file.failed)"


def _is_special(path: str) -> bool:
    """A FIFO, socket or device: skipped, as rsync does without -D (a file
    that vanished is left to fail, and be reported, when it is opened)."""
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
