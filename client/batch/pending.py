"""The work items of a batch waiting to start, and which one starts next.

Spread items wait in one queue and go to the least-loaded server with
room; pinned items wait in their server's queue, and servers take turns
(round robin) among those with room and a connection slot (``blocked``: the
ones waiting for a slot, longest-waiting first). An item put back (a retry,
a server busy or unreachable) goes to the head of its queue.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

from .attempt import WorkItem
from .servers import Server, ServerPool


class PendingWork:
    def __init__(self, pool: ServerPool) -> None:
        self._pool = pool
        self._spread: collections.deque[WorkItem] = collections.deque()
        self._pinned: dict[Server, collections.deque[WorkItem]] = {}
        self._ready: dict[Server, None] = {}  # servers with pinned items and room (or down)
        self._blocked: dict[Server, None] = {}  # the same, waiting for a connection slot
        self.count = 0

    def add(self, item: WorkItem, *, first: bool = False) -> None:
        """Queue ``item`` (at the head of its queue with ``first``)."""
        self.count += 1
        if item.pinned is None:
            queue = self._spread
        else:
            queue = self._pinned.setdefault(item.pinned, collections.deque())
        if first:
            queue.appendleft(item)
        else:
            queue.append(item)
        if item.pinned is not None:
            item.pinned.pending += 1
            self.mark_ready(item.pinned)

    def mark_ready(self, server: Server) -> None:
        """Call when ``server`` may have room again (or went down)."""
        if self._pinned.get(server) and (server.has_room or server.down is not None):
            self._ready[server] = None

    def server_full(self, server: Server) -> None:
        """``server`` has no room left: its pinned items wait."""
        self._ready.pop(server, None)

    def next_startable(self) -> tuple[WorkItem, Server | None] | None:
        """The next item to start and where (None as server: it can't run
        anywhere); None when nothing can start now."""
        while True:
            found = self._next_pinned()
            if found is not None:
                return found
            if not self._blocked or not self._pool.can_reserve(next(iter(self._blocked))):
                break
            # A slot is free: the longest-waiting server gets the next try.
            server = next(iter(self._blocked))
            del self._blocked[server]
            if self._pinned.get(server):
                self._ready[server] = None
        if self._spread:
            item = self._spread[0]
            chosen = self._pool.least_loaded(item.tried)
            if chosen is None and self._pool.all_down:
                for candidate in self._pool.targets:
                    if candidate.revive():
                        return (item, candidate) if self._pool.can_reserve(candidate) else None
                return item, None
            if chosen is not None:
                return item, chosen
        return None

    def _next_pinned(self) -> tuple[WorkItem, Server | None] | None:
        """The next pinned item whose server has room and a connection slot
        (round robin over the servers), or one that must fail."""
        while self._ready:
            server = next(iter(self._ready))
            del self._ready[server]
            queue = self._pinned.get(server)
            if not queue:
                continue
            if server.down is not None and not server.revive():
                self._ready[server] = None  # its other items fail next
                return queue[0], None
            if not server.has_room:
                continue  # back in _ready when an attempt there ends
            if not self._pool.can_reserve(server):
                self._blocked[server] = None
                continue
            self._ready[server] = None  # move to the end: round robin
            return queue[0], server
        return None

    def take(self, item: WorkItem) -> None:
        """Remove ``item`` (the head of its queue, from ``next_startable``)."""
        if item.pinned is None:
            self._spread.popleft()
        else:
            queue = self._pinned[item.pinned]
            queue.popleft()
            item.pinned.pending -= 1
            if not queue:  # a server's queue lives only while it holds items
                del self._pinned[item.pinned]
                self._ready.pop(item.pinned, None)
                self._blocked.pop(item.pinned, None)
        self.count -= 1

    def drain(self) -> Iterator[WorkItem]:
        """Remove and yield every pending item (the batch stopped)."""
        queues = [self._spread, *self._pinned.values()]
        self._pinned.clear()
        self._ready.clear()
        self._blocked.clear()
        for queue in queues:
            while queue:
                item = queue.popleft()
                self.count -= 1
                if item.pinned is not None:
                    item.pinned.pending -= 1
                yield item
