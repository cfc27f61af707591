"""Fixtures of the server tests: unique process markers (cleaned up by PID),
and connections that are closed at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .wire import Wire, connect, kill_leftovers, unique_marker


@pytest.fixture
def marker() -> Iterator[Callable[[], str]]:
    """Factory of unique ``sleep`` durations; any process still carrying one at
    teardown is SIGKILLed by its PID (it is ours: nobody else uses the value)."""
    made: list[str] = []

    def make() -> str:
        value = unique_marker()
        made.append(value)
        return value

    yield make
    for value in made:
        kill_leftovers(value)


@pytest.fixture
def wires() -> Iterator[Callable[..., Wire]]:
    """Factory: ``wires(server, auth=True, **kw)`` → an open ``Wire``, closed at teardown."""
    opened: list[Wire] = []

    def make(server: Any, **kwargs: Any) -> Wire:
        wire = connect(server, **kwargs)
        opened.append(wire)
        return wire

    yield make
    for wire in opened:
        wire.close()
