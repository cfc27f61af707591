"""The file side of transfers, what puts and gets share: their errors, where
they may go (``Place``) and ``FileTransfer``, the task that owns the file and
runs its I/O. ``put`` writes a file atomically (rexec/server/transfer_put.py),
``get`` streams one out (rexec/server/transfer_get.py).

A ``PutTransfer`` or ``GetTransfer`` is driven like a ``CommandRunner`` by its
lifecycle in rexec/server/transfers.py (stdin, ``stdin_eof`` and cancel routed
to it, output paused when the client stops reading, cancelled on disconnect)
and reports through callbacks, exactly once through ``on_finish``.

Paths are resolved when the file is opened, beneath the roots the server and
the key allow (``rexec.files.open_path``/``open_parent``: every component
opened relative to a verified directory descriptor), and the put's temporary
file, its rename and the get's read all happen relative to descriptors from
that resolution, never to a path looked up again. A path that leads outside
the roots is ``command.denied``; a race with someone swapping directories
gives that or a file error, never a byte outside.

Where the file I/O runs: on the loop's default executor (a thread), at most
one operation at a time per transfer, each bounded to about one chunk
(``CHUNK_SIZE``), with the SHA-256 computed in the same thread call (hashlib
releases the GIL). Writes to the page cache are usually quick, but not
always: the kernel throttles a writer once too much data is dirty, a cold
read waits for the disk, and ``fsync`` takes as long as the disk needs; in a
thread they stall only this transfer.

Memory stays bounded by the credit: a put holds at most its window of
received bytes, with small frames coalesced on arrival into one buffer (a
put sent as 262,144 one-byte frames holds 1 byte per byte of credit, not the
~50 of a list of tiny objects), and the atomic writer hands any number of
pieces to ``writev`` in batches of at most ``IOV_MAX``; a get holds two
chunks (the one being sent and the one read ahead), and waits while the
session's transport is above its high-water mark.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from rexec.files import OutsideRoots, Roots, TempRecords
from rexec.protocol import ErrorCode, StdinEof

#: Bytes read from a file, or written to one, in one executor call: the
#: protocol's body cap, so that a get's chunk is one ``stdout`` frame.
CHUNK_SIZE = 1024 * 1024

#: Seconds a resumable put's partial file is kept for a resume: the start-up
#: sweep removes older ones.
PARTIAL_MAX_AGE = 7 * 24 * 3600

_T = TypeVar("_T")


class TransferError(Exception):
    """A transfer failed; ``code`` is the command-scoped error for the wire.

    The message never quotes the client's path ([error.message.no_echo]).
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class TransferOutcome:
    """How a transfer ended: ``done`` when ``error`` is None."""

    error: TransferError | None = None
    size: int = 0  # bytes of the file written (put) or sent from (get)
    sha256: str = ""  # of the whole file


@dataclasses.dataclass(frozen=True)
class Place:
    """Where transfers may go: beneath ``roots``, relative paths from
    ``home``; ``records`` notes temporary files for the start-up sweep."""

    roots: Roots
    home: str
    records: TempRecords | None = None


FinishCallback = Callable[[TransferOutcome], None]


def file_error(exc: OSError, *, missing: str = "no such file or directory") -> TransferError:
    """The wire error for an OSError raised by a file operation."""
    name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return TransferError(ErrorCode.FILE_NOT_FOUND, f"{missing} ({name})")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return TransferError(ErrorCode.FILE_PERMISSION_DENIED, f"permission denied ({name})")
    if exc.errno == errno.EISDIR:
        return TransferError(ErrorCode.FILE_IS_DIRECTORY, f"is a directory ({name})")
    return TransferError(ErrorCode.FILE_FAILED, f"file operation failed ({name})")


def _denied() -> TransferError:
    return TransferError(ErrorCode.COMMAND_DENIED, "the path leads outside the allowed roots")


class FileTransfer:
    """What puts and gets share: the task that owns the file, its abort, and
    the executor calls."""

    def __init__(self, path: str, place: Place, on_finish: FinishCallback) -> None:
        self.path = path
        self.place = place
        self._loop = asyncio.get_running_loop()
        self._on_finish = on_finish
        self._abort: TransferError | None = None
        self._wake = asyncio.Event()  # set when there is something to do
        self._task: asyncio.Task[None] | None = None
        #: True while a thread may still be using our descriptor after our
        #: task was torn down: the descriptor is then left open, not reused.
        self._abandoned = False
        self.finished = False

    def start(self) -> None:
        self._task = self._loop.create_task(self._main())

    # --- the runner-like interface the session drives ---------------------------

    def cancel(self) -> None:
        """Abort the transfer (a ``cancel``, a disconnect, or shutdown); it
        ends with ``file.cancelled`` and leaves nothing behind (a resumable
        put keeps what it received)."""
        self._fail(TransferError(ErrorCode.FILE_CANCELLED, "transfer cancelled"))

    def pause_output(self) -> None:
        """The client's side is full (only a get sends bulk data)."""

    def resume_output(self) -> None:
        pass

    def write_stdin(self, data: bytes) -> None:
        """Only a put takes stdin; the protocol core refuses it for a get."""

    def close_stdin(self, eof: StdinEof | None = None) -> None:
        pass

    # --- internals ---------------------------------------------------------------

    def _fail(self, error: TransferError) -> None:
        if self._abort is None and not self.finished:
            self._abort = error
            self._wake.set()

    def _check_abort(self) -> None:
        if self._abort is not None:
            raise self._abort

    async def _io(self, function: Callable[..., _T], *args: Any) -> _T:
        """Run one bounded file operation in a thread. The caller takes
        ownership of what it returns before checking for an abort."""
        try:
            return await self._loop.run_in_executor(None, function, *args)
        except asyncio.CancelledError:
            self._abandoned = True  # the thread may be mid-call on our descriptor
            raise
        except OutsideRoots:
            raise _denied() from None
        except OSError as exc:
            raise file_error(exc) from None

    async def _main(self) -> None:
        outcome = TransferOutcome()
        try:
            outcome.size, outcome.sha256 = await self._transfer()
        except TransferError as exc:
            outcome.error = exc
        except Exception:  # noqa: BLE001 -- a bug: end this transfer, loudly in the log
            traceback.print_exc(file=sys.stderr)
            outcome.error = TransferError(ErrorCode.FILE_FAILED, "internal server error")
        finally:
            self._cleanup()
        self.finished = True
        self._on_finish(outcome)

    async def _transfer(self) -> tuple[int, str]:
        raise NotImplementedError

    def _cleanup(self) -> None:
        raise NotImplementedError
