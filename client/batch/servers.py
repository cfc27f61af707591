"""The servers of a batch: one connection each, opened on first use and
shared by all the jobs that run there (multiplexed), and their load.

Contract:

* ``Server.connection()`` opens the connection once; concurrent callers wait
  for the same attempt. A failed attempt, or a connection found lost, marks
  the server *down* (``down`` says why) and its connection is dropped.
* A down server gets no new spread jobs. ``revive()`` allows one more
  connection attempt (after a short back-off), at most ``reconnects`` times:
  retries of jobs pinned to it use that.
* ``limit`` is ``--per-host`` (or unbounded), lowered to the server's
  announced ``max_commands`` once connected, and lowered further when the
  server answers ``busy`` (its global limit, shared with other clients).
* ``ServerPool.least_loaded()`` picks the up server with room and the fewest
  running jobs (ties: the first listed), in O(log n) through a lazy heap.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Awaitable, Callable, Iterable

from ..address import Address
from ..connection import ClientConnection
from ..errors import RexecConnectionError
from .targets import label

Connector = Callable[[Address], Awaitable[ClientConnection]]

#: Seconds to wait before reconnecting to a server that was down (× revivals).
REVIVE_BACKOFF = 0.5
_CLOSE_TIMEOUT = 5.0


class Server:
    """One target of the batch."""

    def __init__(
        self, address: Address, index: int, connector: Connector, per_host: int | None,
        reconnects: int, spread: bool,
    ) -> None:
        self.address = address
        self.label = label(address)
        self.index = index
        self.spread = spread
        self.running = 0
        self.limit: float = per_host if per_host else math.inf
        self.down: str | None = None
        self._connector = connector
        self._connection: ClientConnection | None = None
        self._connecting: asyncio.Task[ClientConnection] | None = None
        self._reconnects_left = reconnects
        self._revivals = 0

    @property
    def has_room(self) -> bool:
        return self.down is None and self.running < self.limit

    async def connection(self) -> ClientConnection:
        """The server's connection, opened if needed.

        Raises:
            RexecConnectionError: it can't be reached (the server is now down).
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
            connection = await self._connector(self.address)
        except RexecConnectionError as exc:
            self.mark_down(str(exc))
            raise
        finally:
            self._connecting = None
        self._connection = connection
        self.limit = min(self.limit, connection.server_limits.max_commands)
        return connection

    def mark_down(self, why: str) -> None:
        """Record that the server can't be used (the first reason wins)."""
        if self.down is None:
            self.down = why
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            asyncio.ensure_future(connection.close())

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
        return True

    def busy(self) -> None:
        """The server refused a command as ``busy``: run fewer there."""
        self.limit = max(1, min(self.limit, self.running - 1))

    def cancel_connecting(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()

    async def close(self) -> None:
        self.cancel_connecting()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await connection.close()
            except TimeoutError:
                pass


class ServerPool:
    """All servers of a batch, by address; the spread ones in load order."""

    def __init__(
        self, addresses: Iterable[Address], connector: Connector, *,
        per_host: int | None = None, reconnects: int = 0,
    ) -> None:
        self._connector = connector
        self._per_host = per_host
        self._reconnects = reconnects
        self._servers: dict[Address, Server] = {}
        self._heap: list[tuple[int, int]] = []
        for address in addresses:
            self._add(address, spread=True)
        self.targets: list[Server] = list(self._servers.values())

    def _add(self, address: Address, *, spread: bool) -> Server:
        server = Server(
            address, len(self._servers), self._connector, self._per_host, self._reconnects, spread
        )
        self._servers[address] = server
        if spread:
            heapq.heappush(self._heap, (0, server.index))
        return server

    def get(self, address: Address) -> Server:
        """The server of ``address``; one not in the target list is added
        (for jobs pinned there) but gets no spread jobs."""
        server = self._servers.get(address)
        return server if server is not None else self._add(address, spread=False)

    def changed(self, server: Server) -> None:
        """Call after ``server``'s load or state changed."""
        if server.spread and server.has_room:
            heapq.heappush(self._heap, (server.running, server.index))

    def least_loaded(self, avoid: Iterable[Server] = ()) -> Server | None:
        """The up spread server with room and the fewest running jobs,
        preferring ones not in ``avoid``; None when none has room."""
        avoided = set(avoid)
        if avoided:
            others = [s for s in self.targets if s.has_room and s not in avoided]
            if others:
                return min(others, key=lambda s: (s.running, s.index))
        while self._heap:
            running, index = self._heap[0]
            server = self.targets[index]
            if server.has_room and server.running == running:
                return server
            heapq.heappop(self._heap)  # stale: its load changed, or it is full or down
        return None

    @property
    def all_down(self) -> bool:
        """True when every spread server is down and can't be revived now."""
        return all(s.down is not None for s in self.targets)

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._servers.values()))
