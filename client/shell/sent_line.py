"""A line sent to the remote shell, and what its end will be known by.

A line is sent as soon as the user accepts it, before the prompt has drawn
the accepted line for the last time (``RemoteShell.send_line``), so that the
remote shell runs it while the prompt finishes; the session then waits for
its end (``RemoteShell.run_line``) once the prompt has given the terminal
back.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class SentLine:
    """One line on its way: its number, the record that will answer it (its
    status, or ``more``), the end of its output and state (``ending``), and
    the text that ends it on the shell's stdin (sent again for sh)."""

    seq: int
    answer: asyncio.Future[Any]
    ending: asyncio.Future[Any]
    done: bytes

    def forget(self) -> None:
        """Stop waiting for any of it (the session went another way)."""
        forget(self.answer)
        forget(self.ending)


def forget(future: asyncio.Future[Any]) -> None:
    """Stop waiting for ``future``: cancel it, and take its exception (so
    that asyncio does not report it as never retrieved).

    A cancelled ``gather`` does not end cancelled: it ends later, once its
    children have, with a ``CancelledError`` as its *exception*, which is
    taken when it comes (a line that needs a continuation line forgets its
    ``ending`` gather this way at every ``> `` prompt)."""
    future.cancel()
    future.add_done_callback(_take_exception)


def _take_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
