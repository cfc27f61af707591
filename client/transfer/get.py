"""``get``: a server's file to a local file (or a stream, such as standard
output).

To a file, through the one atomic writer (``rexec.files.AtomicFile``): a new
temporary file beside the target (``.NAME.rexec-XXXXXXXX.tmp``, mode 0600),
written and hashed in a thread as frames arrive; at ``done`` the size and
SHA-256 are checked, the file gets the server's permission bits less the
local umask (``local_mode``: never setuid, setgid or sticky; and with
``preserve_mtime`` its modification time), is flushed, and is renamed into
place. A failed, cancelled or interrupted ``get`` never leaves a file under
the final name. With ``resume``, an interrupted get keeps its partial file
(``.NAME.rexec-KEY.part``) and the next one asks the server for the rest
only ([transfer.get.offset]); the server's digest is of the whole file, so
the kept start is checked too, and a start that no longer matches the
server's file is dropped and the whole file fetched again.

To a stream, bytes are written as they arrive (a pipe can't be renamed
into place): a digest mismatch is reported at the end, after the bytes.

Unread data is bounded: above ``GET_HIGH_WATER`` bytes waiting to be
written, the connection stops reading its socket.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, BinaryIO

from rexec.eventloop import bulk_over
from rexec.files import AtomicFile, DigestWriter, OutsideRoots, Roots, open_parent
from rexec.protocol import Get

from .channel import (
    DEFAULT_STALL_TIMEOUT,
    Channel,
    Progress,
    TransferResult,
    in_thread,
    interrupted,
    remote_path,
)
from .errors import TransferError, local_error

if TYPE_CHECKING:
    from ..connection import ClientConnection

#: Bytes of a get received but not yet written above which the connection
#: stops reading its socket (it resumes at half).
GET_HIGH_WATER = 4 * 1024 * 1024
#: The bits of a server's mode a local file may get: read, write and execute
#: for owner, group and others; setuid, setgid and sticky never (as rsync
#: without --perms, the safer of scp and rsync).
_PERMISSION_BITS = 0o777


def local_mode(server_mode: int) -> int:
    """The mode a fetched file gets: the server's permission bits less
    setuid, setgid and sticky, and less this process's umask, as for any
    file a local program creates (rsync without --perms): a server can't
    make a setuid or world-writable file here."""
    return server_mode & _PERMISSION_BITS & ~_umask()


def _umask() -> int:
    # Read, not set: os.umask() can only be read by changing it, which
    # would race the threads that create files.
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # no /proc (not Linux): the portable way, briefly strict
    os.umask(mask)
    return mask


def check_local_target(local_path: str | os.PathLike[str]) -> None:
    """Raise the ``TransferError`` a ``get`` into ``local_path`` would meet
    at once: its directory missing, or the path itself a directory."""
    target = os.fsencode(local_path)
    directory = os.path.dirname(target) or b"."
    if os.path.isdir(target) or os.path.basename(target) in (b"", b".", b".."):
        raise TransferError("local.is_directory", "the target is a directory", remote=False)
    if not os.path.isdir(directory):
        code = "local.not_found" if not os.path.exists(directory) else "local.failed"
        raise TransferError(code, "the target directory does not exist", remote=False)


def _open_writer(
    target: str | os.PathLike[str], resume_key: str | None, local_root: str | None
) -> AtomicFile:
    roots = Roots([local_root] if local_root is not None else [])
    try:
        dir_fd, name = open_parent(os.fspath(target), roots, base=os.getcwd())
    except OutsideRoots:
        raise TransferError("local.denied", "the path leads out of the target tree by a link",
                            remote=False) from None  # fmt: skip
    return AtomicFile.create(dir_fd, name, resume_key=resume_key)  # owns dir_fd


async def get(
    conn: ClientConnection,
    remote: str,
    local: str | os.PathLike[str] | BinaryIO,
    *,
    preserve_mtime: bool = False,
    resume: bool = False,
    local_root: str | None = None,
    progress: Progress | None = None,
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
) -> TransferResult:
    """Copy the server's file ``remote`` to ``local``: a path (replaced
    atomically if it exists, with the server file's mode through
    ``local_mode``, and with
    ``preserve_mtime`` its modification time) or a binary stream (such as
    ``sys.stdout.buffer``). With ``resume``, see the module docstring. With
    ``local_root``, ``local`` must resolve inside that directory (symbolic
    links on the way followed only while they stay in it): ``local.denied``
    otherwise. A server that sends nothing of the file for ``stall_timeout``
    seconds (None: no limit) fails it with ``transfer.stalled``; the
    partial file is removed (kept with ``resume``).

    Raises:
        TransferError: a local or remote failure, or ``file.digest_mismatch``
            when the bytes received are not those the server hashed.
        RexecConnectionError: the connection is or got lost.
    """
    started = time.monotonic()
    path = remote_path(remote)
    if not isinstance(local, (str, os.PathLike)):
        sink = DigestWriter(local.fileno())  # standard output is not ours to close
        mode, _ = await _fetch(conn, path, sink, 0, progress, stall_timeout)
        return _result(local, remote, sink, mode, started)
    check_local_target(local)
    key = hashlib.sha256(f"{conn.peer}\0{path}".encode()).hexdigest()[:32] if resume else None
    for attempt in range(2):
        try:
            writer: AtomicFile = await in_thread(_open_writer, local, key, local_root)
        except OSError as exc:
            raise local_error(exc) from None
        try:
            mode, mtime = await _fetch(conn, path, writer, writer.resumed, progress, stall_timeout)
            mode = local_mode(mode)
            await in_thread(writer.commit, mode, mtime if preserve_mtime else None)
        except TransferError as exc:
            await in_thread(writer.keep if key is not None and interrupted(exc) else writer.discard)
            # A kept start that no longer matches the server's file: drop it,
            # fetch the whole file once.
            stale = exc.code in ("file.digest_mismatch", "file.size_mismatch")
            if writer.resumed and stale and attempt == 0:
                continue
            raise
        except OSError as exc:
            await in_thread(writer.discard)
            raise local_error(exc) from None
        except BaseException as exc:
            await in_thread(writer.keep if key is not None and interrupted(exc) else writer.discard)
            raise
        return _result(local, remote, writer, mode, started)
    raise AssertionError("unreachable: the second attempt starts from nothing")


async def _fetch(
    conn: ClientConnection,
    path: str,
    sink: DigestWriter,
    offset: int,
    progress: Progress | None,
    stall_timeout: float | None,
) -> tuple[int, float | None]:
    """Get ``path`` from ``offset`` on into ``sink``, and check the whole
    against the server's ``done``; returns the file's mode and mtime."""
    command_id = conn.next_command_id()
    channel = Channel(GET_HIGH_WATER, stall_timeout)
    await conn.open_transfer(Get(id=command_id, path=path, offset=offset), channel)
    try:
        await channel.wait_until(lambda: channel.file is not None)
        channel.raise_error()
        file = channel.file
        assert file is not None
        while True:
            chunks = channel.take()
            if chunks:
                try:
                    await in_thread(sink.write, chunks)
                except BrokenPipeError:
                    raise  # a stream's reader went away (`| head`): as print() does
                except OSError as exc:
                    raise local_error(exc) from None
                if progress is not None:
                    progress(sink.size, file.size)
                continue
            if channel.finished:
                break
            await channel.wait()
        channel.raise_error()
        done = channel.done
        assert done is not None
        if (sink.size, sink.sha256) != (done.size, done.sha256):
            raise TransferError("file.digest_mismatch",
                                "the bytes received do not match the server's sha256",
                                remote=False)  # fmt: skip
    except BaseException:
        channel.cancel(conn, command_id)
        raise
    finally:
        bulk_over()  # after bulk, the freed heap goes back (rexec/eventloop.py)
    return file.mode, file.mtime


def _result(
    local: object, remote: str, sink: DigestWriter, mode: int, started: float
) -> TransferResult:
    name = os.fsdecode(local) if isinstance(local, (str, os.PathLike)) else "-"
    return TransferResult(
        "get", name, remote, sink.size, sink.sha256, mode, time.monotonic() - started,
        sink.resumed,
    )  # fmt: skip
