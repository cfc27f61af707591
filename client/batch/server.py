"""``Server``: one target of a batch — its shared connection (opened on
first use, for all the jobs that run there), its load and limit, whether it
is down and why. The slots and the load order of all servers are
``servers.ServerPool``'s (``Slots`` is what a server needs of it).

* ``connection()`` opens the connection once; concurrent callers wait for
  the same attempt. A failed attempt, or a connection found lost, marks the
  server *down* (``down`` says why) and its connection is dropped — at once,
  or, for a server that said it will run no more commands (``drain``), once
  the commands running on it have ended.
* A down server gets no new jobs. ``revive()`` allows one more connection
  attempt (after a short back-off), at most ``reconnects`` times: retries of
  jobs pinned to it use that.
* ``limit`` is ``--per-host`` (or unbounded), lowered to the server's
  announced ``max_commands`` once connected, and lowered further when the
  server answers ``busy`` (its global limit, shared with other clients).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..address import Address
from ..connection import ClientConnection
from ..errors import RexecConnectionError
from .descriptors import OutOfDescriptors, out_of_descriptors
from .targets import label

Connector = Callable[[Address], Awaitable[ClientConnection]]

#: Seconds to wait before reconnecting to a server that was down (× revivals).
REVIVE_BACKOFF = 0.5
_CLOSE_TIMEOUT = 5.0


class Slots(Protocol):
    """What a server needs of its pool (``servers.ServerPool``)."""

    connector: Connector

    def changed(self, server: Server) -> None: ...

    def released(self, server: Server, *, closing: bool) -> None: ...

    def closed(self, server: Server) -> None: ...

    def out_of_descriptors(self, server: Server) -> bool: ...


class Server:
    """One target of the batch."""

    __slots__ = (
        "_connecting",
        "_connection",
        "_pool",
        "_reconnects_left",
        "_revivals",
        "address",
        "descriptor_retries",
        "down",
        "holds_slot",
        "index",
        "label",
        "limit",
        "pending",
        "running",
        "spread",
    )

    def __init__(
        self,
        address: Address,
        index: int,
        pool: Slots,
        per_host: int | None,
        reconnects: int,
        spread: bool,
    ) -> None:
        self.address = address
        self.label = label(address)
        self.index = index
        self.spread = spread
        self.running = 0
        #: Jobs queued for this server alone (kept by the scheduler).
        self.pending = 0
        self.limit: float = per_host if per_host else math.inf
        self.down: str | None = None
        #: True from ``ServerPool.reserve`` until the connection is closed.
        self.holds_slot = False
        self._pool = pool
        self._connection: ClientConnection | None = None
        self._connecting: asyncio.Task[ClientConnection] | None = None
        self._reconnects_left = reconnects
        self._revivals = 0
        self.descriptor_retries = 0

    @property
    def has_room(self) -> bool:
        return self.down is None and self.running < self.limit

    async def connection(self) -> ClientConnection:
        """The server's connection, opened if needed (the caller holds its
        slot: see ``ServerPool.reserve``).

        Raises:
            RexecConnectionError: it can't be reached (the server is now down).
            OutOfDescriptors: no descriptor was left to connect with.
        """
        if self.down is not None:
            raise RexecConnectionError(self.down)
        if self._connection is not None and not self._connection.is_closed:
            return self._connection
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect(), name=f"connect-{self.label}")
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> ClientConnection:
        try:
            if self._revivals:
                await asyncio.sleep(min(REVIVE_BACKOFF * self._revivals, 5.0))
            connection = await self._pool.connector(self.address)
        except RexecConnectionError as exc:
            if out_of_descriptors(exc) and self._pool.out_of_descriptors(self):
                raise OutOfDescriptors(str(exc)) from None
            self.mark_down(str(exc))
            raise
        finally:
            self._connecting = None
        if not self.holds_slot:
            # Marked down while it connected (another job's connection to it
            # was lost), or the batch is closing: an idle server is the only
            # one evicted, and a server connecting has a job. The reason it is
            # down is this job's reason too.
            asyncio.ensure_future(connection.close())
            raise RexecConnectionError(
                self.down or f"the connection to {self.label} was closed by the client"
            )
        self._connection = connection
        self.limit = min(self.limit, connection.server_limits.max_commands)
        return connection

    def mark_down(self, why: str, *, drain: bool = False) -> None:
        """Record that the server can't be used (the first reason wins) and
        close its connection; with ``drain`` (the server said it will start
        no more commands, but those running carry on) only once nothing of
        the batch runs there (``drained``)."""
        if self.down is None:
            self.down = why
        if not drain or not self.running:
            self.evict()

    def drained(self) -> None:
        """Call when an attempt on this server ended: the connection of a
        down server closes with its last command."""
        if self.down is not None and not self.running:
            self.evict()

    def evict(self) -> None:
        """Close the connection (in the background) and give the slot back
        once it is closed: for a down server, or an idle one whose slot is
        wanted."""
        connection, self._connection = self._connection, None
        if not self.holds_slot:
            return
        self.holds_slot = False
        if connection is None or connection.is_closed:
            self._pool.released(self, closing=False)
            return

        async def close() -> None:
            try:
                await _close(connection)
            finally:
                self._pool.closed(self)

        self._pool.released(self, closing=True)
        asyncio.ensure_future(close())

    @property
    def is_connecting(self) -> bool:
        return self._connecting is not None

    def revive(self) -> bool:
        """Allow one more connection attempt to a down server, if the budget
        allows; True when it does."""
        if self.down is None:
            return True
        if self._reconnects_left <= 0:
            return False
        self._reconnects_left -= 1
        self._revivals += 1
        self.down = None
        self._pool.changed(self)
        return True

    def busy(self) -> None:
        """The server refused a command as ``busy``: run fewer there."""
        self.limit = max(1, min(self.limit, self.running - 1))

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        connection, self._connection = self._connection, None
        self.holds_slot = False
        if connection is not None:
            await _close(connection)


async def _close(connection: ClientConnection) -> None:
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await connection.close()
    except TimeoutError:
        pass
