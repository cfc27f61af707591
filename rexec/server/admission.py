"""Who gets in, and what failing costs: connections still authenticating,
connections authenticated, and a penalty for addresses that keep presenting
wrong keys (after sshd's MaxStartups and PerSourcePenalties).

The rule: a client with the right key is never refused because of what others
did. So nothing is refused before authentication:

- Connections that have not authenticated share a table of
  ``max_unauthenticated`` slots. A new connection always gets one; when the
  table is full, an older one loses its slot (and is closed with ``busy``):
  first one waiting out an authentication penalty, else the oldest connection
  of the source holding the most slots. An attacker's flood displaces its own
  connections first, and a legitimate handshake, which takes milliseconds,
  survives ``max_unauthenticated`` newer connections arriving meanwhile. By
  age rather than at random, because a connection can't make itself younger
  without opening another (which displaces one of its own); and not by what a
  connection has sent, which an attacker controls.
- A wrong key costs the connection that presented it: after ``auth_failures``
  failures from a source within ``auth_failure_window``, each further failure
  is answered only after a delay (1 s, doubling, at most ``auth_penalty``),
  except for sources in ``penalty_exempt``. The next connection, and the
  right key, are not slowed.
- The limits on connections (``max_connections`` in all, per source and key,
  per key) count authenticated connections only, and are checked once a key
  is proven: ``busy`` to a key holder when the server is full is an honest
  answer. The per-key cap, well below the global one, keeps the holder of one
  key (however restricted) from filling the server, and the per-source cap
  counts each key's connections from an address apart: on loopback every
  local user shares one address. Either way it is that key's new connection
  that is refused, never another key's.

What "slows" means under a flood of new connections from the client's own
address: the listening socket keeps asyncio's accept queue of 100, and a
connection whose SYN finds it full waits for the kernel's retry (1 s). A
larger queue is worse: asyncio accepts up to that many connections at a time,
and a burst of more than ``max_unauthenticated`` then displaces a connection
before its client could answer ``hello`` (bench/admission_flood.py, churn).

A source is an IPv4 address or an IPv6 /64 (the block one host is usually
given). Pure bookkeeping: the caller passes the time in, so it is tested
without a clock. Its tables are bounded: the slots by their number, the
authenticated counts by ``max_connections``, the failure records by pruning.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import itertools
from collections.abc import Hashable
from typing import TypeVar

#: The first penalty delay, doubled with each further failure.
PENALTY_BASE = 1.0
#: Tracked sources above which expired failure records are first swept.
_PRUNE_ABOVE = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Name = TypeVar("_Name", str, tuple[str, str])


@dataclasses.dataclass(frozen=True)
class AdmissionLimits:
    max_connections: int
    max_connections_per_source: int
    max_unauthenticated: int
    auth_failures: int
    auth_failure_window: float
    auth_penalty: float
    penalty_exempt: tuple[Network, ...] = ()
    #: Authenticated connections with one key (0: no cap).
    max_connections_per_key: int = 0


@dataclasses.dataclass(frozen=True)
class _Pending:
    """A connection that has not authenticated: its source, when it came (a
    sequence number) and whether its source is exempt from penalties."""

    source: str
    seq: int
    exempt: bool


def source_of(host: str) -> str:
    """The source a peer address counts under: IPv4 as it is (also when
    mapped into IPv6), IPv6 by its /64."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Admission:
    """The pre-authentication table, the authenticated counts and the
    failure records of one server (see the module doc).

    Connections are any hashable handle (the server's sessions).
    """

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        #: Unauthenticated connections, oldest first: in all, by source, and
        #: those waiting out a penalty.
        self._pending: dict[Hashable, _Pending] = {}
        self._by_source: dict[str, dict[Hashable, None]] = {}
        self._penalised: dict[Hashable, None] = {}
        #: Sources by how many slots they hold, each group in the order its
        #: sources reached that number; and the largest number held.
        self._holding: dict[int, dict[str, None]] = {}
        self._most = 0
        self._seq = itertools.count()
        #: Authenticated connections with their sources and keys, and the
        #: counts by (source, key) and by key.
        self._authenticated: dict[Hashable, tuple[str, str]] = {}
        self._per_source: collections.Counter[tuple[str, str]] = collections.Counter()
        self._per_key: collections.Counter[str] = collections.Counter()
        #: Failed authentications by source: how many, and when the last was.
        self._failures: dict[str, tuple[int, float]] = {}
        self._prune_at = _PRUNE_ABOVE

    # --- before authentication ---------------------------------------------------------

    def admit(self, conn: Hashable, host: str) -> Hashable | None:
        """Take a new connection from ``host`` in; returns the connection
        that lost its slot to it (to be closed with ``busy``), or None."""
        source = source_of(host)
        self._pending[conn] = _Pending(source, next(self._seq), self._exempt(host))
        conns = self._by_source.setdefault(source, {})
        conns[conn] = None
        self._regroup(source, len(conns) - 1, len(conns))
        if len(self._pending) <= self.limits.max_unauthenticated:
            return None
        victim = self._victim()
        self._forget(victim)
        return victim

    def failed(self, conn: Hashable, now: float) -> float:
        """Record that ``conn`` presented a wrong key; returns how long its
        answer waits (0: at once)."""
        pending = self._pending.get(conn)
        if pending is None:
            return 0.0
        limits = self.limits
        count, last = self._failures.get(pending.source, (0, now))
        count = count + 1 if now - last < limits.auth_failure_window else 1
        self._failures[pending.source] = (count, now)
        if len(self._failures) > self._prune_at:
            self._prune(now)
        beyond = count - limits.auth_failures
        if beyond <= 0 or pending.exempt or limits.auth_penalty <= 0:
            return 0.0
        self._penalised[conn] = None
        return min(limits.auth_penalty, PENALTY_BASE * float(2 ** min(beyond - 1, 30)))

    # --- after authentication ----------------------------------------------------------

    def authenticated(self, conn: Hashable, key: str) -> str | None:
        """``conn`` proved the key named ``key``: None if it may stay (it now
        counts as authenticated), else why not (the connection limits)."""
        pending = self._pending.get(conn)
        if pending is None:
            return "the connection is closing"
        self._forget(conn)
        limits = self.limits
        if len(self._authenticated) >= limits.max_connections:
            return "too many connections; retry later"
        if self._per_source[pending.source, key] >= limits.max_connections_per_source:
            return "too many connections with this key from this address; retry later"
        if 0 < limits.max_connections_per_key <= self._per_key[key]:
            return "too many connections with this key; retry later"
        self._authenticated[conn] = (pending.source, key)
        self._per_source[pending.source, key] += 1
        self._per_key[key] += 1
        return None

    def closed(self, conn: Hashable) -> None:
        """``conn`` is gone (closing twice is harmless)."""
        self._forget(conn)
        held = self._authenticated.pop(conn, None)
        if held is not None:
            _release(self._per_source, held)
            _release(self._per_key, held[1])

    # --- internals ---------------------------------------------------------------------

    def _victim(self) -> Hashable:
        if self._penalised:
            return next(iter(self._penalised))
        if self._most == 1:
            return next(iter(self._pending))  # one slot each: the oldest of all
        # The oldest connection of the source that has held the most slots
        # the longest (dicts keep insertion order).
        busiest = next(iter(self._holding[self._most]))
        return next(iter(self._by_source[busiest]))

    def _regroup(self, source: str, before: int, after: int) -> None:
        """Move ``source`` from the group of those holding ``before`` slots
        to the group holding ``after``."""
        if before:
            group = self._holding[before]
            del group[source]
            if not group:
                del self._holding[before]
        if after:
            self._holding.setdefault(after, {})[source] = None
        self._most = max(self._most, after)
        while self._most and self._most not in self._holding:
            self._most -= 1

    def _forget(self, conn: Hashable) -> None:
        pending = self._pending.pop(conn, None)
        if pending is None:
            return
        self._penalised.pop(conn, None)
        conns = self._by_source[pending.source]
        del conns[conn]
        self._regroup(pending.source, len(conns) + 1, len(conns))
        if not conns:
            del self._by_source[pending.source]

    def _exempt(self, host: str) -> bool:
        if not self.limits.penalty_exempt:
            return False
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self.limits.penalty_exempt)

    def _prune(self, now: float) -> None:
        """Forget sources whose failures are all older than the window, so
        that many addresses failing once each can't grow memory for ever."""
        window = self.limits.auth_failure_window
        for source in [s for s, (_, last) in self._failures.items() if now - last >= window]:
            del self._failures[source]
        # Next sweep when the live entries have doubled: amortised O(1).
        self._prune_at = max(_PRUNE_ABOVE, 2 * len(self._failures))


def _release(counts: collections.Counter[_Name], name: _Name) -> None:
    """One fewer under ``name``; a count that reaches zero is dropped (the
    tables hold only what is in use)."""
    counts[name] -= 1
    if not counts[name]:
        del counts[name]
