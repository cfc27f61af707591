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
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Self

from ..connection import ClientConnection
from ..term.status_line import StatusLine, clock
from ..transfer import (
    DEFAULT_STALL_TIMEOUT,
    Progress,
    TransferError,
    TransferResult,
    remote_path,
)
from .base import add_command, one_line, seconds_or_never
from .common import (
    EXIT_FAILURE,
    add_connection_options,
    fail,
    open_connection,
    run_async_command,
)

#: Exit status when at least one transfer failed.
EXIT_TRANSFER_FAILED = 1
#: Seconds between two redraws of the progress line.
_REDRAW_INTERVAL = 0.1
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


#: Seconds between keepalive pings on a put's or get's connection unless
#: --keepalive says otherwise (as rexec batch): a server that stops (a hung
#: host, SIGSTOP) is found out after three unanswered pings, also while no
#: file is moving, as in the listing commands of -r, which --stall-timeout
#: does not bound.
TRANSFER_KEEPALIVE = 5.0


def register_transfer(
    subparsers: Any,
    name: str,
    help: str,
    description: str,
    examples: str,
    operands: Sequence[tuple[str, str, str]],
    handler: Callable[[argparse.Namespace], int],
) -> None:
    """Add ``rexec put`` or ``rexec get``: ``HOST[:PORT]`` then the
    ``operands`` (name, metavar, help), the options of both, ``handler``."""
    usage = "%(prog)s [options] HOST[:PORT] " + " ".join(metavar for _, metavar, _ in operands)
    parser = add_command(subparsers, name, help, description, EPILOG_COMMON + examples, usage=usage)
    parser.add_argument("address", metavar="HOST[:PORT]", help="the server")
    for operand, metavar, text in operands:
        parser.add_argument(operand, metavar=metavar, help=text)
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
    parser.add_argument(
        "--stall-timeout", type=seconds_or_never, default=DEFAULT_STALL_TIMEOUT, metavar="SECONDS",
        help="fail a file when the server sends nothing of it for this long while the "
        "connection is up, as rsync's --timeout; 0: never (default: %(default)g)",
    )  # fmt: skip
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    noise.add_argument(
        "-v", "--verbose", action="store_true",
        help="print the summary line even when stderr is not a terminal",
    )  # fmt: skip
    add_connection_options(parser, keepalive=TRANSFER_KEEPALIVE)
    parser.set_defaults(handler=handler)


def run_transfer(
    args: argparse.Namespace,
    transfer: Callable[[ClientConnection, argparse.Namespace, Reporter], Awaitable[None]],
) -> int:
    """Connect as ``args`` say, run ``transfer`` reporting to a ``Reporter``,
    and return the exit status (SIGTERM and SIGHUP end it as Ctrl-C does)."""

    async def connected() -> int:
        with Reporter(args) as reporter:
            async with await open_connection(args, args.address) as conn:
                await transfer(conn, args, reporter)
            return reporter.status

    return run_async_command(ended_by_signals(connected()))


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class Reporter:
    """Progress line and summary lines on stderr, as the options ask."""

    def __init__(self, args: argparse.Namespace) -> None:
        tty = sys.stderr.isatty()
        self.show_progress = tty and not args.quiet
        self.show_summary = (tty or args.verbose) and not args.quiet
        self.quiet = args.quiet
        self.failures = 0
        self._line = StatusLine(sys.stderr)

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
                line = f"{shown} {human_bytes(done)} {rate / 1e6:.1f} MB/s"
            else:
                percent = 100 * done // total if total else 100
                eta = clock((total - done) / rate) if rate > 0 else "--:--"
                width = 20
                filled = width * percent // 100
                bar = "#" * filled + "-" * (width - filled)
                line = (
                    f"{shown} [{bar}] {percent:3d}% {human_bytes(done)} "
                    f"{rate / 1e6:.1f} MB/s ETA {eta}"
                )
            self._line.draw(line)

        return update

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """A progress line still drawn when the transfer stops short (Ctrl-C,
        a lost connection) stays as it was, ended by a newline, so that what
        follows (the shell's prompt) starts a line of its own."""
        self._line.end()

    def clear(self) -> None:
        self._line.clear()

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

    def failed(self, name: str, exc: TransferError, consequence: str = "") -> None:
        """One line for ``name``'s failure (and what follows from it)."""
        self.clear()
        self.failures += 1
        if exc.code == "transfer.stalled" and not consequence:
            consequence = "--stall-timeout sets how long to wait"
        what = f"{exc.message}; {consequence} ({exc.code})" if consequence else str(exc)
        fail(f"{name}: {what}", EXIT_TRANSFER_FAILED)

    def passed_over(self, name: str, why: str) -> None:
        """A file left out on purpose, as rsync's "skipping non-regular
        file": one line (unless -q), and not a failure."""
        self.clear()
        if not self.quiet:
            print(f"rexec: {one_line(f'{name}: {why}, skipped')}", file=sys.stderr, flush=True)

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
