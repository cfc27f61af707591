"""Who may connect: connection counts overall and per source, connections still
authenticating, and a penalty for addresses that keep failing to authenticate
(as sshd's MaxStartups and PerSourcePenalties). Pure bookkeeping: the caller
passes the time in, so it is tested without a clock.
"""

from __future__ import annotations

import collections
import dataclasses


@dataclasses.dataclass(frozen=True)
class AdmissionLimits:
    max_connections: int
    max_connections_per_source: int
    max_unauthenticated: int
    max_unauthenticated_per_source: int
    auth_failures: int
    auth_failure_window: float
    auth_penalty: float


#: Tracked sources above which expired entries are first swept.
_PRUNE_ABOVE = 4096


class Admission:
    """Counts connections by source and decides whether a new one is let in."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._connections: collections.Counter[str] = collections.Counter()
        self._unauthenticated: collections.Counter[str] = collections.Counter()
        self._failures: dict[str, collections.deque[float]] = {}
        self._penalised_until: dict[str, float] = {}
        self._prune_at = _PRUNE_ABOVE

    def refusal(self, source: str, now: float) -> str | None:
        """Why a new connection from ``source`` is refused, or None to admit it."""
        limits = self.limits
        until = self._penalised_until.get(source)
        if until is not None:
            if now < until:
                return "too many failed authentications from this address; try later"
            del self._penalised_until[source]
        if sum(self._connections.values()) >= limits.max_connections:
            return "too many connections"
        if self._connections[source] >= limits.max_connections_per_source:
            return "too many connections from this address"
        if sum(self._unauthenticated.values()) >= limits.max_unauthenticated:
            return "too many connections authenticating"
        if self._unauthenticated[source] >= limits.max_unauthenticated_per_source:
            return "too many connections authenticating from this address"
        return None

    def opened(self, source: str) -> None:
        self._connections[source] += 1
        self._unauthenticated[source] += 1

    def authenticated(self, source: str) -> None:
        self._decrement(self._unauthenticated, source)

    def closed(self, source: str, *, authenticated: bool) -> None:
        self._decrement(self._connections, source)
        if not authenticated:
            self._decrement(self._unauthenticated, source)

    def failed(self, source: str, now: float) -> None:
        """Record a failed authentication; enough of them penalise the source."""
        limits = self.limits
        recent = self._failures.setdefault(source, collections.deque())
        recent.append(now)
        while recent and recent[0] <= now - limits.auth_failure_window:
            recent.popleft()
        if len(recent) >= limits.auth_failures:
            self._penalised_until[source] = now + limits.auth_penalty
            del self._failures[source]
        if len(self._failures) + len(self._penalised_until) > self._prune_at:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Forget sources whose failures and penalties have all expired, so
        that many addresses failing once each can't grow memory for ever."""
        window = self.limits.auth_failure_window
        for source in [s for s, times in self._failures.items() if times[-1] <= now - window]:
            del self._failures[source]
        for source in [s for s, until in self._penalised_until.items() if until <= now]:
            del self._penalised_until[source]
        # Next sweep when the live entries have doubled: amortised O(1).
        self._prune_at = max(_PRUNE_ABOVE, 2 * (len(self._failures) + len(self._penalised_until)))

    @staticmethod
    def _decrement(counter: collections.Counter[str], source: str) -> None:
        counter[source] -= 1
        if counter[source] <= 0:
            del counter[source]
