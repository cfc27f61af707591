"""What the server tells its observers, and nothing more.

The server emits one of these events where something happens (a connection
opens, a key fails, a command ends, output leaves); observers subscribe with
``Server.subscribe``. The audit trail writes records from them
(rexec/server/audit.py) and rexec.ops.metrics counts them. An observer never
sends, refuses or delays anything, and the server holds observers through the
``Observer`` interface only, so it never imports what observes it.

Two audit records are not events but gates, written by the request's own
lifecycle before it may start: ``exec`` (rexec/server/commands.py) and
``put``/``get`` (rexec/server/transfers.py). If they can't be written, nothing
runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from rexec.protocol import Exit
from rexec.server.outcome import Stream


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """The connection an event belongs to: its number (counted from 1 since
    the daemon started) and the peer's ``HOST:PORT``."""

    session: int
    peer: str


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionOpened:
    """A TCP connection was accepted, whether it is then admitted or not."""

    origin: Origin


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionRefused:
    """Admission closed the connection with ``busy``: a newer connection took
    its slot before it authenticated, or, once its key was proven, the
    connection limits were reached (rexec/server/admission.py)."""

    origin: Origin
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionAdmitted:
    """The connection was let in and has been sent the server's ``hello``."""

    origin: Origin


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection is gone; ``running`` commands and transfers were cancelled."""

    origin: Origin
    running: int


@dataclasses.dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame too large before authentication: perhaps another protocol."""

    origin: Origin
    code: str
    note: str


@dataclasses.dataclass(frozen=True, slots=True)
class AuthSucceeded:
    origin: Origin
    key: str  # the name of the key that matched


@dataclasses.dataclass(frozen=True, slots=True)
class AuthFailed:
    origin: Origin
    reason: Literal["failed", "timeout"]


@dataclasses.dataclass(frozen=True, slots=True)
class DeadlineExpired:
    """The connection was closed because a frame or the idle deadline passed."""

    origin: Origin
    deadline: Literal["frame_timeout", "idle_timeout"]


@dataclasses.dataclass(frozen=True, slots=True)
class ClientStalled:
    """The client left output unread for the stall timeout: its ``running``
    commands were ended and the connection dropped."""

    origin: Origin
    running: int


@dataclasses.dataclass(frozen=True, slots=True)
class RequestRefused:
    """A ``run``, ``put`` or ``get`` was refused before it started.

    ``details`` says what was asked (argv or shell string, or path) when the
    refusal was about it.
    """

    origin: Origin
    id: int
    code: str
    reason: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class CommandStarted:
    origin: Origin
    id: int
    pid: int


@dataclasses.dataclass(frozen=True, slots=True)
class CommandFinished:
    """A command ended; ``exit`` is the record its client was sent."""

    origin: Origin
    exit: Exit


@dataclasses.dataclass(frozen=True, slots=True)
class OutputSent:
    """Command output went to the client (counted, never looked at)."""

    stream: Stream
    nbytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class TransferFinished:
    """A ``put`` or ``get`` ended: done when ``code`` is None."""

    origin: Origin
    id: int
    op: Literal["put", "get"]
    code: str | None
    size: int
    sha256: str


Event = (
    ConnectionOpened | ConnectionRefused | ConnectionAdmitted | Disconnected | BadFrame
    | AuthSucceeded | AuthFailed | DeadlineExpired | ClientStalled | RequestRefused
    | CommandStarted | CommandFinished | OutputSent | TransferFinished
)  # fmt: skip


class Observer(Protocol):
    """Told of every event, on the event loop; returns at once and never raises."""

    def notify(self, event: Event) -> None: ...
