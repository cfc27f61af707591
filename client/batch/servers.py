"""The servers of a batch: one connection each, opened on first use and
shared by all the jobs that run there (multiplexed), their load, and the
fanout: how many connections are open at once.

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
* Fanout (``ServerPool.fanout``, as clush's and pdsh's ``-f``): a server
  needs a *slot* to connect, and holds it until its connection is closed.
  When every slot is taken, ``reserve()`` closes the connection of an idle
  server (nothing running; one with no work queued first, least recently
  used first); when none is idle the caller waits (``can_reserve()``). A
  connection being closed counts until it is closed, so the number of
  sockets never exceeds the fanout. Running out of descriptors anyway
  (``OutOfDescriptors``) lowers the fanout; the job waits for a slot.
* ``ServerPool.least_loaded()`` picks the spread server with room and the
  fewest running jobs (ties: the first listed), preferring servers already
  connected, and opening a new connection only while a slot is free: in
  O(log n) through two lazy heaps.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import math
from collections.abc import Awaitable, Callable, Iterable

from ..address import Address
from ..connection import ClientConnection
from ..errors import RexecConnectionError
from .descriptors import OutOfDescriptors, descriptors_free, out_of_descriptors
from .targets import label

Connector = Callable[[Address], Awaitable[ClientConnection]]

#: Connections open at once unless ``--fanout`` says otherwise: far more than
#: clush's 64 (a rexec connection is one socket, not an ssh process), far
#: below the usual open-file limits, and enough to keep a 2,000 jobs/s client
#: busy with servers that answer in 100 ms.
DEFAULT_FANOUT = 256
#: Seconds to wait before reconnecting to a server that was down (× revivals).
REVIVE_BACKOFF = 0.5
_CLOSE_TIMEOUT = 5.0
#: How many idle servers ``reserve`` looks through for one with no work queued.
_EVICTION_SCAN = 64
_DESCRIPTOR_RETRIES = 3  # connection attempts after EMFILE with nothing open


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
        pool: ServerPool,
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

    def mark_down(self, why: str) -> None:
        """Record that the server can't be used (the first reason wins)."""
        if self.down is None:
            self.down = why
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


class ServerPool:
    """All servers of a batch, by address; the spread ones in load order;
    the connection slots.

    Args:
        fanout: connections open at once, at most (None: one per server).
    """

    def __init__(
        self,
        addresses: Iterable[Address],
        connector: Connector,
        *,
        per_host: int | None = None,
        reconnects: int = 0,
        fanout: int | None = None,
    ) -> None:
        self.connector = connector
        self._per_host = per_host
        self._reconnects = reconnects
        self._servers: dict[Address, Server] = {}
        self._by_index: list[Server] = []
        #: Spread servers holding a slot, by (running, index); lazy.
        self._connected: list[tuple[int, int]] = []
        #: Spread servers without a slot, by index; lazy.
        self._unconnected: list[int] = []
        for address in addresses:
            self._add(address, spread=True)
        self.targets: list[Server] = list(self._servers.values())
        self.fanout = fanout if fanout is not None else max(1, len(self.targets))
        #: Why the fanout was lowered during the run, if it was.
        self.fanout_note: str | None = None
        self.open = 0  # servers holding a slot
        self.closing = 0  # connections closing, not yet closed
        self.peak_open = 0
        #: Servers holding a slot with nothing running, least recently used first.
        self._idle: collections.OrderedDict[Server, None] = collections.OrderedDict()
        #: Called when a slot becomes free (the scheduler wakes up).
        self.on_slot_free: Callable[[], None] = lambda: None

    def _add(self, address: Address, *, spread: bool) -> Server:
        server = Server(address, len(self._servers), self, self._per_host, self._reconnects, spread)
        self._servers[address] = server
        self._by_index.append(server)
        if spread:
            heapq.heappush(self._unconnected, server.index)
        return server

    def get(self, address: Address) -> Server:
        """The server of ``address``; one not in the target list is added
        (for jobs pinned there) but gets no spread jobs."""
        server = self._servers.get(address)
        return server if server is not None else self._add(address, spread=False)

    @property
    def servers(self) -> list[Server]:
        """Every server: the targets, then those added by ``get``."""
        return self._by_index

    # --- load -------------------------------------------------------------------

    def changed(self, server: Server) -> None:
        """Call after ``server``'s load or state changed."""
        if server.holds_slot and server.running == 0:
            self._idle[server] = None
        else:
            self._idle.pop(server, None)
        if not server.spread or not server.has_room:
            return
        if server.holds_slot:
            heapq.heappush(self._connected, (server.running, server.index))
        else:
            heapq.heappush(self._unconnected, server.index)

    def _top_connected(self) -> Server | None:
        while self._connected:
            running, index = self._connected[0]
            server = self._by_index[index]
            if server.holds_slot and server.has_room and server.running == running:
                return server
            heapq.heappop(self._connected)  # stale
        return None

    def _top_unconnected(self) -> Server | None:
        while self._unconnected:
            server = self._by_index[self._unconnected[0]]
            if not server.holds_slot and server.has_room:
                return server
            heapq.heappop(self._unconnected)  # stale
        return None

    def least_loaded(self, avoid: Iterable[Server] = ()) -> Server | None:
        """The spread server to run the next spread job on: the least loaded
        with room, preferring connected ones and ones not in ``avoid``;
        a new connection only while a slot is free. None: wait."""
        avoided = set(avoid)
        if avoided:
            others = [
                s
                for s in self.targets
                if s.spread
                and s.has_room
                and s not in avoided
                and (s.holds_slot or self._slot_free)
            ]
            if others:
                return min(others, key=lambda s: (not s.holds_slot, s.running, s.index))
        connected, fresh = self._top_connected(), self._top_unconnected()
        if fresh is not None and self._slot_free and (connected is None or connected.running):
            return fresh
        return connected

    @property
    def all_down(self) -> bool:
        """True when every spread server is down and can't be revived now."""
        return all(s.down is not None for s in self.targets if s.spread)

    # --- slots --------------------------------------------------------------------

    @property
    def _slot_free(self) -> bool:
        return self.open + self.closing < self.fanout

    def can_reserve(self, server: Server) -> bool:
        """True when ``server`` holds a slot or can get one now."""
        return server.holds_slot or self._slot_free or bool(self._idle)

    def reserve(self, server: Server) -> None:
        """Give ``server`` a slot, closing an idle server's connection if every
        slot is taken (``can_reserve`` must be true)."""
        if server.holds_slot:
            return
        if not self._slot_free:
            self._evict_one()
        server.holds_slot = True
        self.open += 1
        self.peak_open = max(self.peak_open, self.open + self.closing)
        self._idle.pop(server, None)

    def _evict_one(self) -> None:
        victim = next(iter(self._idle))
        for _, candidate in zip(range(_EVICTION_SCAN), self._idle, strict=False):
            if candidate.pending == 0:
                victim = candidate
                break
        victim.evict()

    def released(self, server: Server, *, closing: bool) -> None:
        """``server`` gave its slot back (its socket closes in the background
        when ``closing``)."""
        self.open -= 1
        self.closing += closing
        self._idle.pop(server, None)
        self.changed(server)
        if not closing:
            self.on_slot_free()

    def closed(self, server: Server) -> None:
        self.closing -= 1
        self.on_slot_free()

    def out_of_descriptors(self, server: Server) -> bool:
        """Connecting to ``server`` found no descriptor. True (its slot given
        back, the fanout kept to the connections holding one) when waiting
        frees one: another connection is open, opening or closing, or none
        is but the limit has room now (closed meanwhile; a few tries)."""
        others = [s for s in self._by_index if s is not server and s.holds_slot]
        connected = sum(1 for s in others if not s.is_connecting)
        if not self.closing + len(others):
            if server.descriptor_retries >= _DESCRIPTOR_RETRIES or not descriptors_free():
                return False
            server.descriptor_retries += 1
        if server.holds_slot:
            server.holds_slot = False
            self.released(server, closing=False)
        holding = max(1, self.closing + connected)
        if holding < self.fanout:
            self.fanout = holding
            self.fanout_note = f"fanout lowered to {holding}: out of file descriptors"
        return True

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._servers.values()))
        self.open = 0
