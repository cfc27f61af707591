"""The frames of one transfer's id, as the connection hands them over (a
``CommandHandler``), for the ``put`` or ``get`` coroutine that waits on
them; and what both directions share around it."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rexec.eventloop import bulk_moved, pin_allocator
from rexec.protocol import Cancel, Done, Error, File, LocalProtocolError, StdinCredit, Stdout

from ..errors import RexecConnectionError
from .errors import TransferError

if TYPE_CHECKING:
    from ..connection import ClientConnection

#: ``progress(bytes_done, bytes_total)``, called as data moves; the total is
#: None while unknown (a put from a pipe).
Progress = Callable[[int, "int | None"], None]

#: Seconds a transfer may wait for the server (for data, credit or its end)
#: without receiving a frame of it before it fails with ``transfer.stalled``,
#: as rsync's ``--timeout`` (which is off by default; a hang is not): a
#: server may stop a transfer while it still answers pings, and nothing else
#: ends the wait. Long enough for a server's silent work: the ``fsync`` at the
#: end of a put, or hashing the kept start of a resumed one.
DEFAULT_STALL_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class TransferResult:
    """A transfer that succeeded.

    Attributes:
        direction: ``"put"`` or ``"get"``.
        local_path, remote_path: as given (``-`` for a stream).
        size: bytes of the file; sha256: their digest (checked end to end).
        mode: the permission bits the file got.
        seconds: wall time of the whole transfer.
        resumed: bytes an earlier, interrupted transfer had already moved
            (``resume=True``); only ``size - resumed`` crossed the wire.
    """

    direction: str
    local_path: str
    remote_path: str
    size: int
    sha256: str
    mode: int
    seconds: float
    resumed: int = 0

    @property
    def mb_per_s(self) -> float:
        """Throughput of what crossed the wire, in MB/s (10^6 bytes per second)."""
        return (self.size - self.resumed) / 1e6 / self.seconds if self.seconds > 0 else 0.0


def remote_path(path: str) -> str:
    """The path to send for ``path``: ``~`` and a leading ``~/`` mean the
    server account's home, which is where relative paths start
    ([transfer.path]), so they are sent relative.

    Raises:
        TransferError: ``~user`` (another account's home: not supported), or
            an empty path (it names nothing; never the root, never the home).
    """
    if not path:
        raise TransferError(
            "local.failed", "the remote path is empty (use '~' or '.' for the home directory)",
            remote=False,
        )  # fmt: skip
    if path == "~" or path == "~/":
        return "."
    if path.startswith("~/"):
        return path[2:].lstrip("/") or "."
    if path.startswith("~"):
        raise TransferError(
            "local.failed",
            "~user paths are not supported (use ./~name for a name starting with ~)",
            remote=False,
        )
    return path


class Channel:
    """What arrived for one transfer id; the transfer waits on ``wait``,
    at most ``stall_timeout`` seconds at a time (None: for ever)."""

    def __init__(self, high_water: int, stall_timeout: float | None) -> None:
        pin_allocator()  # a transfer is bulk data: keep its megabyte buffers in the heap
        self.file: File | None = None
        self.done: Done | None = None
        self.error: BaseException | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self._high_water = high_water
        self._stall_timeout = stall_timeout
        self._changed = asyncio.Event()
        self._room = asyncio.Event()
        #: Set by ``cancel``: nobody reads the bytes any more.
        self._abandoned = False

    @property
    def finished(self) -> bool:
        return self.done is not None or self.error is not None

    # --- CommandHandler --------------------------------------------------------

    def handle(self, message: object) -> None:
        if isinstance(message, Stdout):
            if self._abandoned:
                return  # in flight before the server saw the cancel
            self.chunks.append(message.data)
            self.buffered += len(message.data)
            bulk_moved(len(message.data))
        elif isinstance(message, File):
            self.file = message
        elif isinstance(message, Done):
            self.done = message
        elif isinstance(message, Error):
            self.error = TransferError(message.code, message.message, remote=True)
        elif not isinstance(message, StdinCredit):  # credit is counted by the protocol state
            return
        self._changed.set()
        if self.finished:
            self._room.set()

    def connection_lost(self, error: RexecConnectionError) -> None:
        if not self.finished:
            self.error = error
        self._changed.set()
        self._room.set()

    @property
    def needs_room(self) -> bool:
        return self.buffered > self._high_water

    async def wait_for_room(self) -> None:
        while self.buffered > self._high_water // 2 and not self.finished:
            self._room.clear()
            await self._room.wait()

    # --- for the transfer ------------------------------------------------------

    async def wait(self) -> None:
        """Wait until some frame (or the end) has arrived since the last wait.

        Raises:
            TransferError: ``transfer.stalled``, when nothing arrived within
                the stall timeout.
        """
        try:
            async with asyncio.timeout(self._stall_timeout):
                await self._changed.wait()
        except TimeoutError:
            raise TransferError(
                "transfer.stalled",
                f"the server sent nothing of it for {self._stall_timeout:g} s, "
                "though the connection is up; gave up",
                remote=False,
            ) from None
        self._changed.clear()

    async def wait_until(self, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()`` or the end."""
        while not (ready() or self.finished):
            await self.wait()

    def take(self) -> list[bytes]:
        chunks = list(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        self._room.set()
        return chunks

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def cancel(self, conn: ClientConnection, command_id: int) -> None:
        """Ask the server to end the transfer, unless it has already ended.
        What it sent meanwhile is dropped: with nobody left to read it, held
        bytes would keep the connection's reader paused (backpressure) and
        every other command on the connection waiting."""
        self._abandoned = True
        self.take()
        if self.finished:
            return
        try:
            conn.send_nowait(Cancel(id=command_id))
        except (LocalProtocolError, RexecConnectionError):
            pass  # it has just ended, or the connection has gone: either way, over


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run a file operation in the default executor. If the caller is
    cancelled meanwhile, wait for the thread to return before passing the
    cancellation on: it may be using a descriptor the caller closes next."""
    future = asyncio.get_running_loop().run_in_executor(None, function, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` cut a transfer off (the connection, a cancel, Ctrl-C)
    rather than a check failing: a resumable transfer keeps its partial
    file then."""
    if isinstance(exc, TransferError):
        return exc.code in ("file.cancelled", "transfer.stalled")
    return isinstance(exc, (RexecConnectionError, asyncio.CancelledError, KeyboardInterrupt))
