"""The summary on stderr at the end of a batch: counts by status, then each
cause of failure with the targets it hit, as a folded node set, as clush and
pdsh users read them::

    rexec batch: 10000 jobs in 9.3 s: 9990 ok, 8 connect_error, 2 failed
      node[0017,0342]: connection refused (2 connect_error)
      node[0100-0105]: no answer within 10 s (6 connect_error)
      node0007: exit 1 (2 failed; jobs 3 9)

In a spread batch (not ``--onall``) the servers dropped during the run
(unreachable, or their connection lost: no more jobs went there) follow,
by cause, even when every job succeeded elsewhere::

      node[0017,0342]: connection refused (dropped: no more jobs sent there)

A job whose connection was lost after its command was sent says so (``…
after the command was sent``): it may have run, and is not run again
unless ``--retries`` allows.

Lines come most frequent first. Memory is bounded whatever the batch size:
per cause, the set of targets and the first few job ids, and at most
``MAX_CAUSES`` causes (the rest are counted on one line).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable

from ..address import Address
from .nodeset import fold
from .outcome import JobResult, Status
from .refusals import is_refusal, refusal_cause, refusal_hint
from .targets import label

_MAX_IDS = 10
_MAX_HINTS = 3
MAX_CAUSES = 32
#: Codes whose ``error`` says what the code alone does not (who ended the
#: command, and how; what went wrong in rexec).
_SAID_WITH_THEIR_CAUSE = ("server.shutting_down", "client.error")


@dataclasses.dataclass
class _Cause:
    count: int = 0
    targets: dict[str, None] = dataclasses.field(default_factory=dict)
    ids: dict[str, None] = dataclasses.field(default_factory=dict)


def cause_of(result: JobResult) -> str:
    """Why a job did not succeed, in a few words that do not name its target
    (so that one cause gathers every target it hit)."""
    status = result.status
    if status is Status.SKIPPED:
        return "not started"
    if status is Status.TIMEOUT:
        return "timed out"
    if status is Status.CANCELLED:  # by us; the error says when it is not confirmed
        return _without_peer(result.error, result.target) if result.error else "cancelled"
    if status.is_transport:
        text = _without_peer(result.error or status.value, result.target)
        return f"{text}, after the command was sent" if result.started else text
    if is_refusal(result):
        return refusal_cause(result)
    if result.error_code in _SAID_WITH_THEIR_CAUSE and result.error:
        return f"{result.error} ({result.error_code})"
    return result.reason


def _without_peer(text: str, target: Address | None) -> str:
    """A connection error's text without the address it names:
    ``cannot connect to web1:7420: connection refused`` → ``connection refused``."""
    if target is None:
        return text
    peer = label(target)
    text = text.replace(f"cannot connect to {peer}: ", "")
    for phrase in (f" from {peer}", f" to {peer}", f"{peer}: ", f"{peer} "):
        text = text.replace(phrase, "")
    return text.strip()


class Summary:
    """Collects what the summary needs (see the module docstring).

    Args:
        display: how a target is written (``targets.DisplayNames``).
    """

    def __init__(self, display: Callable[[Address], str] = label) -> None:
        self._display = display
        self.counts: collections.Counter[Status] = collections.Counter()
        self._causes: dict[tuple[Status, str], _Cause] = {}
        self._other: collections.Counter[Status] = collections.Counter()
        #: Servers dropped during the run, by cause.
        self.dropped: dict[str, list[str]] = {}
        #: What to do instead, for the refusals seen (each said once).
        self._hints: dict[str, None] = {}

    def add_dropped(self, servers: Iterable[tuple[Address, str]]) -> None:
        """Servers dropped during the run, with the reason each was."""
        for address, why in servers:
            names = self.dropped.setdefault(_without_peer(why, address), [])
            names.append(self._display(address))

    def add(self, result: JobResult) -> None:
        self.counts[result.status] += 1
        if result.ok:
            return
        hint = refusal_hint(result) if is_refusal(result) else None
        if hint is not None and len(self._hints) < _MAX_HINTS:
            self._hints[hint] = None
        key = (result.status, cause_of(result))
        cause = self._causes.get(key)
        if cause is None:
            if len(self._causes) >= MAX_CAUSES:
                self._other[result.status] += 1
                return
            cause = self._causes[key] = _Cause()
        cause.count += 1
        if result.target is not None:
            cause.targets[self._display(result.target)] = None
        if len(cause.ids) < _MAX_IDS:
            cause.ids[result.job.id] = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self, elapsed: float, *, stopped: str | None = None) -> list[str]:
        parts = [f"{n} {s.value}" for s in Status if (n := self.counts.get(s))]
        jobs = "job" if self.total == 1 else "jobs"
        head = f"rexec batch: {self.total} {jobs} in {elapsed:.1f} s: {', '.join(parts) or 'none'}"
        if stopped == "halt":
            head += " (halted by --halt)"
        elif stopped == "interrupt":
            head += " (interrupted)"
        lines = [head]
        ranked = sorted(self._causes.items(), key=lambda item: -item[1].count)
        for (status, text), cause in ranked:
            where = fold(cause.targets) if cause.targets else "-"
            jobs = " ".join(cause.ids)
            more = " …" if cause.count > len(cause.ids) and len(cause.ids) == _MAX_IDS else ""
            lines.append(f"  {where}: {text} ({cause.count} {status.value}; jobs {jobs}{more})")
        for text, names in sorted(self.dropped.items(), key=lambda item: -len(item[1])):
            lines.append(f"  {fold(names)}: {text} (dropped: no more jobs sent there)")
        if self._other:
            others = ", ".join(f"{n} {s.value}" for s, n in self._other.items())
            lines.append(f"  (more causes: {others})")
        lines.extend(f"  hint: {hint}" for hint in self._hints)
        return lines
