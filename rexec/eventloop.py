"""The event loop every rexec program runs on: the standard library's, or
uvloop when ``REXEC_EVENT_LOOP=uvloop`` asks for it and it is installed.

uvloop is opt-in, not the default, because ``bench/run.py`` did not show it
paying here: about 10% off the warm round trip, but bulk output no faster and
in most runs slower (see the README's Speed section). Every rexec program
runs on either loop (the test suite passes on both); nothing depends on which.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when ``REXEC_EVENT_LOOP=uvloop`` and uvloop
    is installed; else None (the standard library's loop)."""
    if os.environ.get("REXEC_EVENT_LOOP", "").lower() != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coroutine)
