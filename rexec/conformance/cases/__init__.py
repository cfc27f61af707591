"""All conformance cases, by area. ``all_cases()`` returns them in run order."""

from __future__ import annotations

from ..case import Case
from . import (  # noqa: F401 - imported for their registrations
    commands,
    exits,
    framing,
    handshake,
    headers,
    lifecycle,
    output,
    prompt,
    session,
    stdin,
    timeouts,
    transfer,
    transfer_lifecycle,
    transfer_paths,
    transfer_pieces,
)
from ._registry import REGISTRY

AREAS = (
    "handshake",
    "framing",
    "headers",
    "commands",
    "exits",
    "output",
    "stdin",
    "lifecycle",
    "session",
    "prompt",
    "timeouts",
    "transfer",
    "transfer_lifecycle",
    "transfer_paths",
    "transfer_pieces",
)


def all_cases() -> list[Case]:
    """Every case, grouped by area in protocol order, then in definition order."""
    return sorted(REGISTRY, key=lambda c: AREAS.index(c.area))
