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

from rexec.protocol import ErrorCode, Exit
from rexec.server.outcome import Stream


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """The connection an event belongs to: its number (counted from 1 since
    the daemon started) and the peer's ``HOST:PORT``."""

    session: int
    peer: str


#: Every event is a frozen dataclass with slots.
_event = dataclasses.dataclass(frozen=True, slots=True)


@_event
class _OfConnection:
    """An event of one connection, which ``origin`` names."""

    origin: Origin


@_event
class ConnectionOpened(_OfConnection):
    """A TCP connection was accepted, whether it is then admitted or not."""


@_event
class ConnectionRefused(_OfConnection):
    """Admission closed the connection with ``busy``: a newer connection took
    its slot before it authenticated, or, once its key was proven, the
    connection limits were reached (rexec/server/admission.py)."""

    reason: str


@_event
class ConnectionAdmitted(_OfConnection):
    """The connection was let in and has been sent the server's ``hello``."""


@_event
class Disconnected(_OfConnection):
    """The connection is gone; ``running`` commands and transfers were cancelled."""

    running: int


@_event
class BadFrame(_OfConnection):
    """A protocol error before authentication: bytes of another protocol (a
    frame too large), or a client that does not speak this one (``note``:
    what was wrong)."""

    code: str
    note: str


@_event
class TlsHelloOnPlainListener(_OfConnection):
    """A TLS ClientHello where the first frame goes: a TLS client on a plain
    listener. A rexec client sends one, on a second connection, when the
    greeting is late, to tell a TLS server from a slow one (README, TLS)."""


def bad_frame_before_auth(
    origin: Origin, code: ErrorCode, message: str, data: bytes
) -> BadFrame | TlsHelloOnPlainListener:
    """The event for the protocol error ``code`` (``message``) before
    authentication, ``data`` the bytes just received. A frame too large that
    a TLS handshake record starts (content type 22, version 3.x: SSL 3.0 to
    TLS 1.3 all write 3.0 to 3.4 there) is a TLS client; any other frame too
    large, perhaps another protocol; any other error is said as it is."""
    if code is not ErrorCode.FRAME_TOO_LARGE:
        return BadFrame(origin, code.value, message)
    if len(data) >= 3 and data[0] == 0x16 and data[1] == 0x03 and data[2] <= 0x04:
        return TlsHelloOnPlainListener(origin)
    return BadFrame(origin, code.value, "possibly another protocol")


@_event
class AuthSucceeded(_OfConnection):
    key: str  # the name of the key that matched


@_event
class AuthFailed(_OfConnection):
    reason: Literal["failed", "timeout"]


@_event
class DeadlineExpired(_OfConnection):
    """The connection was closed because a frame or the idle deadline passed."""

    deadline: Literal["frame_timeout", "idle_timeout"]


@_event
class ClientStalled(_OfConnection):
    """The client left output unread for the stall timeout: its ``running``
    commands were ended and the connection dropped."""

    running: int


@_event
class RequestRefused(_OfConnection):
    """A ``run``, ``put`` or ``get`` was refused before it started.

    ``details`` says what was asked (argv or shell string, or path) when the
    refusal was about it.
    """

    id: int
    code: str
    reason: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@_event
class CommandStarted(_OfConnection):
    id: int
    pid: int


@_event
class CommandFinished(_OfConnection):
    """A command ended; ``exit`` is the record its client was sent."""

    exit: Exit


@_event
class OutputSent:
    """Command output went to the client (counted, never looked at)."""

    stream: Stream
    nbytes: int


@_event
class TransferFinished(_OfConnection):
    """A ``put`` or ``get`` ended: done when ``code`` is None."""

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
