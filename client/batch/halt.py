"""``--halt``: when a batch stops early, as GNU parallel's ``--halt``.

``WHEN,WHY=N`` or ``WHEN,WHY=P%``: WHEN is ``now`` (cancel the running jobs
remotely, start no more) or ``soon`` (start no more, let the running ones
finish); WHY is ``fail`` (jobs that did not succeed), ``success`` or
``done`` (either). GNU parallel's old forms are accepted too: ``0`` never,
``1`` = ``soon,fail=1``, ``2`` = ``now,fail=1``, ``-1`` = ``soon,success=1``,
``-2`` = ``now,success=1``, ``P%`` = ``soon,fail=P%``.

A percentage is of the total number of jobs when it is known, else of the
jobs finished so far. Jobs that will be retried don't count until their last
attempt; cancelled and skipped jobs never count.
"""

from __future__ import annotations

import dataclasses
import re

_FORM = re.compile(r"(now|soon),(fail|success|done)=(\d+(?:\.\d+)?)(%?)")
_LEGACY = {"1": "soon,fail=1", "2": "now,fail=1", "-1": "soon,success=1", "-2": "now,success=1"}


class HaltSyntaxError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class HaltPolicy:
    now: bool
    why: str  # "fail", "success" or "done"
    threshold: float
    percent: bool

    @classmethod
    def parse(cls, text: str) -> HaltPolicy | None:
        """The policy ``text`` describes; None for ``never``/``0``.

        Raises:
            HaltSyntaxError: not a form above.
        """
        text = text.strip().lower()
        if text in ("0", "never"):
            return None
        text = _LEGACY.get(text, text)
        if re.fullmatch(r"\d+(?:\.\d+)?%", text):
            text = "soon,fail=" + text
        match = _FORM.fullmatch(text)
        if not match or float(match.group(3)) <= 0:
            raise HaltSyntaxError(
                f"bad --halt {text!r}: expected now|soon,fail|success|done=N or =P% (N > 0)"
            )
        when, why, number, percent = match.groups()
        return cls(now=when == "now", why=why, threshold=float(number), percent=bool(percent))

    def triggered(self, succeeded: int, failed: int, total: int | None) -> bool:
        """Whether to halt after a job ended, given the counts so far."""
        count = {"fail": failed, "success": succeeded, "done": succeeded + failed}[self.why]
        if not self.percent:
            return count >= self.threshold
        base = total if total else succeeded + failed
        return base > 0 and 100.0 * count / base >= self.threshold

    def __str__(self) -> str:
        number = f"{self.threshold:g}{'%' if self.percent else ''}"
        return f"{'now' if self.now else 'soon'},{self.why}={number}"
