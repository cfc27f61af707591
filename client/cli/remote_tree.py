"""The small POSIX helpers ``-r`` runs on the server (``mkdir -p``, ``find
-print0``, ``ln -s``, ``readlink``, ``pwd -P``), since the protocol has no
directory operations: remote path arithmetic, argv batches that keep each
helper's header small, and ``remote_run``, which runs one and holds at most
``HELPER_OUTPUT_LIMIT`` bytes of what it prints, so that a server's listing
can't grow the client's memory without bound."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator

from ..connection import ClientConnection
from ..errors import RemoteCommandError
from ..streams import OutputReader
from .common import EXIT_FAILURE, CliError
from .transfers import EXIT_TRANSFER_FAILED

#: Bytes of paths per helper command (``mkdir -p``, ``ln -s``, ``readlink``):
#: well under the 64 KiB header cap.
_ARGV_BATCH_BYTES = 32 * 1024
#: Bytes of a helper command's stdout (``find``'s listing of a tree: NUL-
#: separated names, some 250,000 of them) that ``-r`` holds in memory; a
#: server that sends more fails the copy, so memory stays bounded.
HELPER_OUTPUT_LIMIT = 16 * 1024 * 1024
_STDERR_TAIL = 4096  # bytes of a helper's stderr kept, for its last line


def remote_join(directory: str, name: str) -> str:
    """``directory/name`` on the server (which is POSIX)."""
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def remote_basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def remote_parent(path: str) -> str:
    """The directory holding ``path`` on the server (``.``: the home)."""
    stripped = path.rstrip("/")
    if "/" not in stripped:
        return "."
    return stripped.rsplit("/", 1)[0] or "/"


def argv_batches(items: Iterable[str], per: int = 1) -> Iterator[list[str]]:
    """``items`` (in groups of ``per`` that stay together) split so that
    each helper command's argv stays small; read lazily, batch by batch."""
    current: list[str] = []
    size = 0
    stream = iter(items)
    while group := list(itertools.islice(stream, per)):
        grown = sum(len(item.encode()) + 8 for item in group)
        if current and size + grown > _ARGV_BATCH_BYTES:
            yield current
            current, size = [], 0
        current.extend(group)
        size += grown
    if current:
        yield current


class TreeFailed(CliError):
    """A ``-r`` copy that can't go on (its helper command failed): status 1."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, EXIT_TRANSFER_FAILED)
        self.code = code  # the server's error code, when it refused the helper


async def remote_run(
    conn: ClientConnection, argv: list[str], what: str, *, cwd: str
) -> tuple[int, str, bytearray]:
    """Run a helper command of ``-r`` on the server in ``cwd``, which the
    server resolves within the roots (so a key or server with ``cwd_roots``
    can use ``-r``); its arguments are relative to ``cwd`` and never climb
    out of it. Returns its return code, the last line of its stderr, and its
    stdout, which is held in memory: at most ``HELPER_OUTPUT_LIMIT`` bytes
    (a server's listing of a tree can't exhaust this side's memory).

    Raises:
        TreeFailed: the server could not run it, refused the directory, or
            sent more than ``HELPER_OUTPUT_LIMIT`` bytes (the command is
            cancelled).
    """
    try:
        process = await conn.start(argv, cwd=cwd)
    except RemoteCommandError as exc:
        if exc.code == "spawn.not_found":
            raise TreeFailed(f"-r needs '{what}' on the server: {exc}") from None
        raise TreeFailed(f"{cwd}: {exc}", exc.code) from None
    stderr_tail = asyncio.create_task(_tail(process.stderr, _STDERR_TAIL))
    try:
        out = await _bounded(process.stdout, HELPER_OUTPUT_LIMIT)
        if out is None:
            process.cancel()
            raise TreeFailed(
                f"{cwd}: the server's '{what}' output passes {HELPER_OUTPUT_LIMIT >> 20} MiB, "
                "the most -r holds in memory (a tree of too many names?): copy it in parts"
            )
        status = await process.wait()
        err = await stderr_tail
    finally:
        stderr_tail.cancel()
    if status.connection_lost:
        raise CliError(status.connection_error or "connection lost", EXIT_FAILURE)
    lines = err.decode(errors="replace").strip().splitlines()
    error = lines[-1] if lines else f"exit status {status.returncode}"
    return status.returncode, error, out


async def _bounded(stream: OutputReader, limit: int) -> bytearray | None:
    """All of ``stream``, or None once it passes ``limit`` bytes."""
    out = bytearray()
    while chunk := await stream.read(2**20):
        if len(out) + len(chunk) > limit:
            return None
        out += chunk
    return out


async def _tail(stream: OutputReader, keep: int) -> bytes:
    """The last ``keep`` bytes of ``stream``, read to its end."""
    tail = b""
    while chunk := await stream.read(2**20):
        tail = (tail + chunk)[-keep:]
    return tail


async def remote_is_directory(conn: ClientConnection, path: str) -> bool:
    """Whether ``path`` is a directory on the server the key may use, asked
    by starting ``true`` in it: the server resolves a working directory
    within the roots, as it would the transfers'.

    Raises:
        TreeFailed: it is outside the roots, or the server can't run ``true``.
    """
    try:
        await remote_run(conn, ["true"], "true", cwd=path)
    except TreeFailed as exc:
        if exc.code == "cwd.invalid":
            return False
        raise
    return True
