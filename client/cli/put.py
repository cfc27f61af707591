"""``rexec put``: copy a local file (or, with ``-r``, a tree) to a server.

See ``transfer_cli`` for the decisions shared with ``rexec get``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..connection import ClientConnection
from ..transfer import TransferError, local_error, put
from .common import open_connection, run_async_command
from .transfers import (
    EPILOG_COMMON,
    Reporter,
    TreeFailed,
    add_transfer_options,
    fail,
    mkdir_batches,
    remote_join,
    remote_run,
)

DESCRIPTION = """\
Copy LOCAL to REMOTE on a rexecd server: streamed with bounded memory, written
there under a temporary name and renamed into place only once its size and
sha256 are checked (a failed copy never leaves a half file), with the local
file's mode. REMOTE may be an existing directory (the file keeps its name);
relative REMOTE paths are relative to the server's home directory.
"""

EXAMPLES = """
examples:
  rexec put server:7420 build.tar.gz /srv/releases/
  rexec put server ./report.pdf 'docs/Q3 report.pdf'
  rexec put -r server ./site /var/www        # makes /var/www/site
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "put",
        help="copy a file or directory to a server",
        description=DESCRIPTION,
        epilog=EPILOG_COMMON + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [options] HOST[:PORT] LOCAL REMOTE",
    )
    parser.add_argument("address", metavar="HOST[:PORT]", help="the server")
    parser.add_argument("local", metavar="LOCAL", help="the file (directory with -r) to send")
    parser.add_argument("remote", metavar="REMOTE", help="the target path on the server")
    add_transfer_options(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    # Reported before connecting: nothing to send.
    try:
        os.stat(args.local)
    except OSError as exc:
        return fail(f"{args.local}: {local_error(exc)}", 1)
    if os.path.isdir(args.local) and not args.recursive:
        return fail(f"{args.local}: is a directory (use -r to copy a tree)", 1)
    return run_async_command(_main(args))


async def _main(args: argparse.Namespace) -> int:
    reporter = Reporter(args)
    async with await open_connection(args, args.address) as conn:
        if os.path.isdir(args.local):
            await _put_tree(conn, args.local, args.remote, reporter)
        else:
            await put_one(conn, args.local, args.remote, reporter, retry_into_directory=True)
    return reporter.status


async def put_one(
    conn: ClientConnection,
    local: str,
    remote: str,
    reporter: Reporter,
    *,
    retry_into_directory: bool,
) -> None:
    """Put one file, reporting its outcome; with ``retry_into_directory``, a
    REMOTE that is a directory receives the file under its local name."""
    name = os.path.basename(local.rstrip(os.sep)) or local
    if retry_into_directory and remote.endswith("/"):
        remote, retry_into_directory = remote_join(remote, name), False
    try:
        try:
            result = await put(conn, local, remote, progress=reporter.progress(name))
        except TransferError as exc:
            if not (retry_into_directory and exc.code == "file.is_directory"):
                raise
            remote = remote_join(remote, name)
            result = await put(conn, local, remote, progress=reporter.progress(name))
    except TransferError as exc:
        reporter.failed(f"{local} -> {remote}", exc)
        return
    reporter.done("sent", name, result)


async def _put_tree(conn: ClientConnection, local: str, remote: str, reporter: Reporter) -> None:
    local = local.rstrip(os.sep) or os.sep
    # scp -r: into an existing directory, as a copy under the same name.
    exists, _, _ = await remote_run(conn, ["test", "-d", remote], "test")
    top = remote_join(remote, os.path.basename(local)) if exists == 0 else remote.rstrip("/") or "/"
    directories: list[str] = [top]
    files: list[tuple[str, str]] = []
    for root, dirnames, filenames in os.walk(local, onerror=None):
        relative = os.path.relpath(root, local)
        remote_root = top if relative == "." else remote_join(top, relative.replace(os.sep, "/"))
        for dirname in sorted(dirnames):
            path = os.path.join(root, dirname)
            if os.path.islink(path):
                reporter.skipped(path, "a symbolic link to a directory: not followed")
                continue
            directories.append(remote_join(remote_root, dirname))
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(root, d)))
        for filename in sorted(filenames):
            files.append((os.path.join(root, filename), remote_join(remote_root, filename)))
    for batch in mkdir_batches(directories):
        status, error, _ = await remote_run(conn, ["mkdir", "-p", "--", *batch], "mkdir")
        if status != 0:
            raise TreeFailed(f"{remote}: could not create the remote directories: {error}")
    for local_path, remote_path in files:
        await put_one(conn, local_path, remote_path, reporter, retry_into_directory=False)
