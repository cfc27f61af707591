"""What ``rexec put`` and ``rexec get`` share: their options, the progress
display, the summary line, directory trees (``-r``) and exit statuses.

Decisions (scp-like where it makes sense):

* The target may be a directory: ``put`` first tries REMOTE as the file's
  name and, when the server answers ``file.is_directory`` (or REMOTE ends
  with ``/``), puts into it under the local basename; ``get`` into an
  existing local directory writes LOCAL/basename(REMOTE).
* ``-r`` copies a tree. An existing target directory receives a copy of the
  source directory under its basename (``put -r d host:/srv`` makes
  ``/srv/d``); a missing one becomes the copy. The protocol has no directory
  operations, so ``put -r`` creates remote directories with ``mkdir -p`` and
  ``get -r`` lists the remote tree with ``find DIR -type d|f|l -print0``, both
  run on the same connection, in the target directory as the server resolves it
  within the roots (so ``-r`` works with ``cwd_roots``, and a tree outside them
  is ``command.denied``), on paths relative to it: the server needs POSIX
  ``sh``, ``mkdir``, ``true``, ``ln``, ``readlink`` and a ``find`` with
  ``-print0`` (GNU, BSD and busybox have them). Symbolic links are copied as
  links, in both directions (as ``rsync -l`` and ``cp -a``, unlike ``scp -r``,
  which copies what they point to): the link's text is kept, never followed, so
  nothing outside the tree is read or written through one; a file of a ``get
  -r`` whose local path would lead out of the target tree through a link is
  refused, and a ``put -r`` refuses a remote link where a directory of the tree
  goes. Other special files (FIFOs, devices, sockets) are reported in one line
  each and skipped, without changing the exit status (rsync's "skipping
  non-regular file"). Directory modes are not kept (files' are). A file that
  fails is reported and the others are still copied.
* File modes are always kept, exactly; ``-p`` also keeps modification
  times (of files).
* ``-`` as LOCAL is standard input (put: read to its end, its size and
  digest sent at the end) or standard output (get: written as it arrives;
  a digest mismatch is reported after the bytes, so check the exit status).
* ``~`` and ``~/PATH`` in REMOTE are the home commands run in (the
  account's passwd home; quote them, or the local shell expands them
  first); ``~user`` is refused, and so is an empty REMOTE (status 255).
* SIGTERM and SIGHUP end a transfer as Ctrl-C does: cleaned up (a get's
  temporary file removed, or kept with ``--resume``), status 128 + N.
* ``--resume``: an interrupted transfer keeps what it moved (the server's
  ``.NAME.rexec-KEY.part`` for a put, the local one for a get), and the same
  command run again continues from there; the whole file is still checked.
* Progress: on stderr, only when stderr is a terminal (``-q`` turns it off),
  rewritten in place with ``\\r``. At the end of each file, one line
  ``sent NAME: N bytes, sha256 X, Y MB/s`` (``received`` for get) on stderr,
  when stderr is a terminal or with ``-v``; never with ``-q``. stdout stays
  empty.
* Exit status: 0 all copied; 1 a transfer failed (missing source, missing
  target directory, permission, digest mismatch …; one ``rexec: …`` line
  each); 255 usage, key, connection, authentication or protocol errors, as
  ``rexec run``. A missing local source, or a missing local target
  directory, is reported before connecting.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
import time
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, Self

from ..connection import ClientConnection
from ..errors import RemoteCommandError
from ..streams import OutputReader
from ..transfer import Progress, TransferError, TransferResult, remote_path
from .base import one_line
from .common import EXIT_FAILURE, CliError, add_connection_options, fail

#: Exit status when at least one transfer failed.
EXIT_TRANSFER_FAILED = 1
#: Seconds between two redraws of the progress line.
_REDRAW_INTERVAL = 0.1
#: Bytes of paths per helper command (``mkdir -p``, ``ln -s``, ``readlink``):
#: well under the 64 KiB header cap.
_ARGV_BATCH_BYTES = 32 * 1024
#: Bytes of a helper command's stdout (``find``'s listing of a tree: NUL-
#: separated names, some 250,000 of them) that ``-r`` holds in memory; a
#: server that sends more fails the copy, so memory stays bounded.
HELPER_OUTPUT_LIMIT = 16 * 1024 * 1024
_STDERR_TAIL = 4096  # bytes of a helper's stderr kept, for its last line
#: Signals that end a transfer as Ctrl-C does (cleaning up after it).
_ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

EPILOG_COMMON = """\
exit status:
  0    everything was copied, sizes and sha256 checked
  1    a transfer failed: missing source or target directory, permission,
       digest mismatch... (one 'rexec: ...' line each)
  255  usage, key, connection, TLS or protocol error (as 'rexec run')

progress and summary:
  On a terminal, a progress line on stderr (bytes, %, MB/s, ETA), then one
  line per file: 'sent NAME: N bytes, sha256 X, Y MB/s'. Not on a terminal:
  silent unless -v. -q: silent always.

-r copies symbolic links as links (never following them) and needs 'sh',
'mkdir', 'true', 'ln', 'readlink' and 'find ... -print0' on the server (POSIX
systems have them); directories' own modes are not kept, files' are. FIFOs,
sockets and devices are skipped with a line.
'-' as LOCAL is standard input (put) or standard output (get). '~/PATH' in
REMOTE is the server account's home (quote it from the local shell).
"""


def add_transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-r", "--recursive", action="store_true",
        help="copy a directory tree; symbolic links are copied as links, never followed",
    )  # fmt: skip
    parser.add_argument(
        "-p", "--preserve", action="store_true",
        help="keep modification times too (file modes are always kept)",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true",
        help="keep what an interrupted transfer moved, and continue from it when run again",
    )  # fmt: skip
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    noise.add_argument(
        "-v", "--verbose", action="store_true",
        help="print the summary line even when stderr is not a terminal",
    )  # fmt: skip
    add_connection_options(parser)


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Reporter:
    """Progress line and summary lines on stderr, as the options ask."""

    def __init__(self, args: argparse.Namespace) -> None:
        tty = sys.stderr.isatty()
        self.show_progress = tty and not args.quiet
        self.show_summary = (tty or args.verbose) and not args.quiet
        self.quiet = args.quiet
        self.failures = 0
        self._drawn = False

    def progress(self, name: str) -> Progress | None:
        """A ``progress`` callback for one file, or None when not shown."""
        if not self.show_progress:
            return None
        started = time.monotonic()
        last = 0.0

        def update(done: int, total: int | None) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last < _REDRAW_INTERVAL and (total is None or done < total):
                return
            last = now
            elapsed = max(now - started, 1e-6)
            rate = done / elapsed
            shown = one_line(name)
            shown = shown if len(shown) <= 30 else "..." + shown[-27:]
            if total is None:  # a stream: no end known
                line = f"\r{shown} {human_bytes(done)} {rate / 1e6:.1f} MB/s"
            else:
                percent = 100 * done // total if total else 100
                eta = _duration((total - done) / rate) if rate > 0 else "--:--"
                width = 20
                filled = width * percent // 100
                bar = "#" * filled + "-" * (width - filled)
                line = (
                    f"\r{shown} [{bar}] {percent:3d}% {human_bytes(done)} "
                    f"{rate / 1e6:.1f} MB/s ETA {eta}"
                )
            sys.stderr.write(line + "\x1b[K")
            sys.stderr.flush()
            self._drawn = True

        return update

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """A progress line still drawn when the transfer stops short (Ctrl-C,
        a lost connection) stays as it was, ended by a newline, so that what
        follows (the shell's prompt) starts a line of its own."""
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False

    def clear(self) -> None:
        if self._drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._drawn = False

    def done(self, verb: str, name: str, result: TransferResult) -> None:
        self.clear()
        resumed = f" (resumed after {result.resumed})" if result.resumed else ""
        self.say(
            f"{verb} {name}: {result.size} bytes{resumed}, sha256 {result.sha256}, "
            f"{result.mb_per_s:.1f} MB/s"
        )

    def say(self, line: str) -> None:
        """A summary line (a file done, a link made), when summaries show."""
        if self.show_summary:
            print(one_line(line), file=sys.stderr, flush=True)

    def failed(self, name: str, exc: TransferError) -> None:
        self.clear()
        self.failures += 1
        fail(f"{name}: {exc}", EXIT_TRANSFER_FAILED)

    def passed_over(self, name: str, why: str) -> None:
        """A file left out on purpose, as rsync's "skipping non-regular
        file": one line (unless -q), and not a failure."""
        self.clear()
        if not self.quiet:
            print(f"rexec: {name}: {why}, skipped", file=sys.stderr, flush=True)

    def skipped(self, name: str, why: str) -> None:
        self.clear()
        self.failures += 1
        fail(f"{name}: {why}", EXIT_TRANSFER_FAILED)

    @property
    def status(self) -> int:
        return EXIT_TRANSFER_FAILED if self.failures else 0


def usage_problem(args: argparse.Namespace, stream: str) -> int | None:
    """The exit status for what is wrong with the command line before
    connecting (a ``~user`` REMOTE; ``-r`` or ``--resume`` with ``-`` for
    ``stream``), or None."""
    try:
        remote_path(args.remote)
    except TransferError as exc:
        return fail(f"{args.remote or repr(args.remote)}: {exc.message}", EXIT_FAILURE)
    if args.local == "-" and (args.recursive or args.resume):
        return fail(
            f"-r and --resume need a file or a directory, not {stream}", EXIT_TRANSFER_FAILED
        )
    return None


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


async def ended_by_signals(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a transfer's ``coroutine`` so that SIGTERM and SIGHUP end it as
    Ctrl-C does: cancelled, so that a get's temporary file is removed (or
    kept, with --resume), then the status of that signal (128 + its number)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        task.cancel()

    for signum in _ENDING_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await coroutine
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        return 128 + received[0]
    finally:
        for signum in _ENDING_SIGNALS:
            loop.remove_signal_handler(signum)


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
