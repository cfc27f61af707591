"""The progress line on stderr, for people: only when stderr is a terminal.

One line, redrawn in place (``\\r``) 5 times a second (``keep_drawn``), from
the start, whether or not jobs end::

    rexec batch: 1200/10000 ok 1180 failed 20 running 64  312/s  ETA 0:28

The total and ETA appear when the number of jobs is known. ``clear()``
erases the line (before the summary, or before output is printed in line
mode would garble it: the caller clears first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TextIO

from ..term.status_line import StatusLine, clock

_INTERVAL = 0.2


class Progress:
    def __init__(self, stream: TextIO, total: int | None) -> None:
        self._line = StatusLine(stream)
        self._total = total
        self._started = time.monotonic()
        self._last = 0.0

    def update(self, ok: int, failed: int, running: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < _INTERVAL:
            return
        self._last = now
        done = ok + failed
        elapsed = max(now - self._started, 1e-6)
        rate = done / elapsed
        count = f"{done}/{self._total}" if self._total else f"{done}"
        line = f"rexec batch: {count} ok {ok} failed {failed} running {running}  {rate:.0f}/s"
        if self._total and rate > 0 and done < self._total:
            line += f"  ETA {clock((self._total - done) / rate)}"
        self._line.draw(line)

    def clear(self) -> None:
        self._line.clear()

    async def keep_drawn(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        """Redraw the line with ``counts()`` (ok, failed, running) every
        ``_INTERVAL`` until cancelled: it shows while no job has ended yet,
        and comes back after printed output cleared it."""
        while True:
            self.update(*counts(), force=True)
            await asyncio.sleep(_INTERVAL)
