"""``rexec get``: copy a file (or with ``-r`` a tree) from a server, to a
local file, standard output, or a local tree.

See ``transfers`` for the decisions shared with ``rexec put``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..connection import ClientConnection
from ..transfer import (
    TransferError,
    check_local_target,
    get,
    make_directory,
    make_link,
    remote_path,
)
from .remote_tree import (
    TreeFailed,
    argv_batches,
    remote_basename,
    remote_is_directory,
    remote_join,
    remote_run,
)
from .transfers import Reporter, fail, register_transfer, run_transfer, usage_problem

DESCRIPTION = """\
Copy REMOTE from a rexecd server to LOCAL ('-' for standard output): streamed
with bounded memory, written here under a temporary name
(.NAME.rexec-XXXXXXXX.tmp, in LOCAL's directory) and renamed into place only
once its size and sha256 are checked (a failed or interrupted copy never
leaves a half file under LOCAL), with the server file's mode. LOCAL may be an
existing directory (the file keeps its name); relative REMOTE paths, '~' and
'~/PATH' are relative to the server account's home.
"""

#: What follows HOST[:PORT]: (name, metavar, help).
OPERANDS = (
    ("remote", "REMOTE", "the file (directory with -r) to fetch"),
    ("local", "LOCAL", "the local target ('-': stdout) or directory"),
)

EXAMPLES = """
examples:
  rexec get server /var/log/syslog .
  rexec get server:7420 'docs/Q3 report.pdf' /tmp/report.pdf
  rexec get server '~/backup.tar.gz' - | tar xzf -
  rexec get -r server /etc/nginx ./backup    # makes ./backup/nginx if ./backup exists
"""

#: Prints each link's target, NUL-terminated (readlink adds a newline).
_READLINK_SCRIPT = 'for l; do readlink -- "$l" || exit 1; printf "\\0"; done'


def register(subparsers: Any) -> None:
    help_line = "copy a file or directory from a server"
    register_transfer(subparsers, "get", help_line, DESCRIPTION, EXAMPLES, OPERANDS, main)


def local_target(remote: str, local: str) -> str:
    """Where REMOTE goes: into LOCAL when it is a directory, else LOCAL."""
    if os.path.isdir(local):
        return os.path.join(local, remote_basename(remote))
    return local


def main(args: argparse.Namespace) -> int:
    # Reported before connecting: there would be nowhere to write.
    problem = usage_problem(args, "standard output")
    if problem is not None:
        return problem
    if args.recursive:
        parent = os.path.dirname(os.path.abspath(args.local))
        if not os.path.isdir(parent):
            return fail(f"{args.local}: the target directory does not exist (local.not_found)", 1)
    elif args.local != "-":
        try:
            check_local_target(local_target(args.remote, args.local))
        except TransferError as exc:
            return fail(f"{args.local}: {exc}", 1)
    return run_transfer(args, _transfer)


async def _transfer(conn: ClientConnection, args: argparse.Namespace, reporter: Reporter) -> None:
    if args.recursive:
        await _get_tree(conn, args, reporter)
    elif args.local == "-":
        await get_one(conn, args.remote, "-", reporter, args)
    else:
        await get_one(conn, args.remote, local_target(args.remote, args.local), reporter, args)


async def get_one(
    conn: ClientConnection,
    remote: str,
    local: str,
    reporter: Reporter,
    args: argparse.Namespace,
    *,
    tree: str | None = None,
) -> None:
    """Get one file into ``local`` ('-': standard output; with ``tree``, a
    path that must stay inside that directory), reporting its outcome."""
    name = os.path.basename(local) if local != "-" else remote_basename(remote)
    try:
        result = await get(
            conn, remote, sys.stdout.buffer if local == "-" else local,
            preserve_mtime=args.preserve, resume=args.resume, local_root=tree,
            progress=reporter.progress(name), stall_timeout=args.stall_timeout,
        )  # fmt: skip
    except TransferError as exc:
        if exc.code == "file.is_directory" and not args.recursive:
            exc = TransferError(exc.code, f"{exc.message} (use -r to copy a tree)",
                                remote=exc.remote)  # fmt: skip
        reporter.failed(f"{remote} -> {local}", exc)
        return
    reporter.done("received", name, result)


async def _find(conn: ClientConnection, remote: str, kind: str) -> Iterator[str]:
    """Paths of type ``kind`` (``d``, ``f`` or ``l``) in the directory
    ``remote``, relative to it (``.`` itself), by ``find`` run there; the
    listing is bounded (``remote_run``) and its names are decoded one by
    one as they are used."""
    status, error, out = await remote_run(
        conn, ["find", ".", "-type", kind, "-print0"], "find", cwd=remote
    )
    if status != 0:
        raise TreeFailed(f"{remote}: cannot list the remote tree: {error}")
    return _names(out)


def _names(listing: bytearray) -> Iterator[str]:
    """The NUL-separated names of ``listing``; names that are not UTF-8 come
    back with surrogates (skipped by ``_utf8``)."""
    start = 0
    while start < len(listing):
        end = listing.find(b"\0", start)
        end = len(listing) if end < 0 else end
        if end > start:
            yield listing[start:end].decode("utf-8", "surrogateescape")
        start = end + 1


async def _link_targets(conn: ClientConnection, remote: str, links: list[str]) -> list[str]:
    status, error, out = await remote_run(
        conn, ["sh", "-c", _READLINK_SCRIPT, "sh", *links], "readlink", cwd=remote
    )
    found = out.split(b"\n\0")[:-1]
    if status != 0 or len(found) != len(links):
        raise TreeFailed(f"cannot read the remote links: {error}")
    return [target.decode("utf-8", "surrogateescape") for target in found]


def _utf8(path: str, reporter: Reporter) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        reporter.skipped(os.fsdecode(path.encode("utf-8", "surrogateescape")),
                         "the name is not UTF-8: the protocol can't name it")  # fmt: skip
        return False
    return True


async def _tree_top(conn: ClientConnection, remote: str, local: str) -> str:
    """Where the remote directory ``remote`` goes: into ``local`` under its
    own name when ``local`` is an existing directory, else ``local``. A
    REMOTE whose last part names no directory (``..``, ``.``, ``~``, a path
    ending in ``/..``) is named after the directory the server resolves it
    to, never written into ``local`` itself or its parent.

    Raises:
        TreeFailed: it resolves to ``/``, which has no name to go under.
    """
    if not os.path.isdir(local):
        return local
    name = remote_basename(remote)
    if name in ("", ".", ".."):
        _, error, out = await remote_run(conn, ["sh", "-c", "pwd -P"], "sh", cwd=remote)
        resolved = out.decode("utf-8", "surrogateescape").removesuffix("\n")
        if not resolved.startswith("/"):
            raise TreeFailed(f"{remote}: cannot tell which remote directory it is: {error}")
        name = remote_basename(resolved)
        if not name:
            raise TreeFailed(
                f"{remote}: the remote directory is '/', which has no name to copy it under "
                f"in {local}: give a LOCAL directory that does not exist yet"
            )
    return os.path.join(local, name)


async def _get_tree(conn: ClientConnection, args: argparse.Namespace, reporter: Reporter) -> None:
    remote = remote_path(args.remote)
    if not await remote_is_directory(conn, remote):  # a file: a plain get
        await get_one(conn, args.remote, local_target(remote, args.local), reporter, args)
        return
    top = await _tree_top(conn, remote, args.local)
    directories = await _find(conn, remote, "d")  # nothing is made if it fails
    try:
        make_directory(top, top)
    except TransferError as exc:
        # As scp -r: the target itself is wrong (a file, a missing parent),
        # so nothing beneath it can be made: one line, and stop.
        raise TreeFailed(f"{top}: {exc}") from None
    # Everything local is made beneath ``top`` through descriptors of
    # directories verified to be in it: a link in the local tree that leads
    # out is never written through (local.denied). One listing at a time is
    # held (each bounded), its names decoded as they are used.
    # A directory that can't be made is one line, and what is beneath it is
    # passed over in silence (as rsync's "skipping any contents"), not one
    # more line for each.
    failed: list[str] = []
    for directory in directories:
        where = _local_path(top, directory)
        if _beneath(where, failed):
            continue
        try:
            make_directory(top, where)
        except TransferError as exc:
            reporter.failed(where, exc, "nothing beneath it was copied")
            failed.append(where)
    for path in await _find(conn, remote, "f"):
        where = _local_path(top, path)
        if not _beneath(where, failed) and _utf8(path, reporter):
            await get_one(conn, remote_join(remote, path[2:]), where, reporter, args, tree=top)
    # Links last, and as links: nothing above was written through one.
    links = (
        link
        for link in await _find(conn, remote, "l")
        if not _beneath(_local_path(top, link), failed) and _utf8(link, reporter)
    )
    for batch in argv_batches(links):
        for link, target in zip(batch, await _link_targets(conn, remote, batch), strict=True):
            where = _local_path(top, link)
            try:
                make_link(top, target, where)
            except TransferError as exc:
                reporter.failed(f"{remote_join(remote, link[2:])} -> {where}", exc)
                continue
            reporter.say(f"link {where} -> {target}")


def _beneath(path: str, directories: list[str]) -> bool:
    """Whether ``path`` is inside one of ``directories``."""
    return any(path.startswith(directory + os.sep) for directory in directories)


def _local_path(top: str, relative: str) -> str:
    """Where the remote ``./relative`` goes beneath ``top``."""
    parts = [part for part in relative.split("/") if part not in ("", ".", "..")]
    return os.path.join(top, *parts)
