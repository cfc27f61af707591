"""The servers of a batch (``ServerPool``): the targets in load order, and
the fanout: how many connections are open at once. One server, its
connection and state, is a ``server.Server``.

Contract:

* A down server gets no new spread jobs (see ``server``).
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
from collections.abc import Callable, Iterable

from ..address import Address
from .descriptors import descriptors_free
from .server import Connector, Server

__all__ = ["DEFAULT_FANOUT", "Connector", "Server", "ServerPool"]

#: Connections open at once unless ``--fanout`` says otherwise: far more than
#: clush's 64 (a rexec connection is one socket, not an ssh process), far
#: below the usual open-file limits, and enough to keep a 2,000 jobs/s client
#: busy with servers that answer in 100 ms.
DEFAULT_FANOUT = 256
#: How many idle servers ``reserve`` looks through for one with no work queued.
_EVICTION_SCAN = 64
_DESCRIPTOR_RETRIES = 3  # connection attempts after EMFILE with nothing open


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
