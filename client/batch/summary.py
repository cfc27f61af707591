"""The summary on stderr at the end of a batch: counts by status, then each
status that is not ok with its reasons and the targets concerned (as a
folded node set) and the first job ids::

    rexec batch: 100 jobs in 2.3 s: 95 ok, 3 failed, 1 timeout, 1 connect_error
      failed (3): exit 1 ×2, spawn.not_found ×1 on 127.0.0.[2-3]:7420; jobs 4 7 9
      connect_error (1): 127.0.0.4:7420; jobs 12 — cannot connect to …: connection refused
"""

from __future__ import annotations

import collections
import dataclasses

from .nodeset import fold
from .outcome import JobResult, Status
from .targets import label

_MAX_IDS = 10


@dataclasses.dataclass
class _Group:
    count: int = 0
    reasons: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    targets: dict[str, None] = dataclasses.field(default_factory=dict)
    ids: list[str] = dataclasses.field(default_factory=list)
    example_error: str | None = None


class Summary:
    """Collects what the summary needs (bounded: per status, the distinct
    targets and the first few ids)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[Status] = collections.Counter()
        self._groups: dict[Status, _Group] = {}

    def add(self, result: JobResult) -> None:
        self.counts[result.status] += 1
        if result.ok:
            return
        group = self._groups.setdefault(result.status, _Group())
        group.count += 1
        group.reasons[result.reason] += 1
        if result.target is not None:
            group.targets[label(result.target)] = None
        if len(group.ids) < _MAX_IDS:
            group.ids.append(result.job.id)
        if group.example_error is None and result.error:
            group.example_error = result.error

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self, elapsed: float, *, stopped: str | None = None) -> list[str]:
        parts = [f"{n} {s.value}" for s in Status if (n := self.counts.get(s))]
        head = f"rexec batch: {self.total} jobs in {elapsed:.1f} s: {', '.join(parts) or 'none'}"
        if stopped == "halt":
            head += " (halted by --halt)"
        elif stopped == "interrupt":
            head += " (interrupted)"
        lines = [head]
        for status in Status:
            group = self._groups.get(status)
            if group is None:
                continue
            reasons = ", ".join(
                f"{reason} ×{n}" if len(group.reasons) > 1 else reason
                for reason, n in group.reasons.most_common(5)
                if reason != status.value
            )
            where = fold(group.targets) if group.targets else ""
            what = f"{reasons} on {where}" if reasons and where else reasons or where
            more = " …" if group.count > len(group.ids) else ""
            line = f"  {status.value} ({group.count}): {what}; jobs {' '.join(group.ids)}{more}"
            if group.example_error and status is not Status.FAILED:
                line += f" — {group.example_error}"
            lines.append(line)
        return lines
