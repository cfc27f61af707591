"""The event loop every rexec program runs on: uvloop where it is installed
(a libuv loop: fewer system calls and less Python per read, write and
readiness callback), the standard library's loop otherwise.

``REXEC_EVENT_LOOP=asyncio`` forces the standard loop (to compare, or to rule
uvloop out when chasing a bug). Nothing else in rexec depends on which loop
runs: the code uses only what both implement.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when it is installed and not switched off,
    else None (the standard library's loop)."""
    if os.environ.get("REXEC_EVENT_LOOP", "").lower() == "asyncio":
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
