"""What commands and transfers have in common: how the session drives one
(``Request``), what one may ask of its session (``RequestHost``), and the
refusal of a request that never started.

Data flows one way through them: the session routes each client message to
the request it names, and a request sends its frames back through its host,
never touching the socket or the protocol state itself.
"""

from __future__ import annotations

from typing import Any, Protocol

from rexec.protocol import Error, ErrorCode, Get, Message, Put, Run, Started, StdinEof
from rexec.server.events import Origin, RequestRefused
from rexec.server.policy import KeyRules
from rexec.server.server import Server
from rexec.server.writer import Terminal


class Request(Protocol):
    """A running command or transfer, as its session drives it. Messages the
    protocol core refuses or drops for a kind of request (a ``signal`` for a ``get``)
    never reach it."""

    def write_stdin(self, data: bytes) -> None: ...

    def close_stdin(self, eof: StdinEof) -> None:
        """The end of stdin (for a put, perhaps with its size and digest)."""

    def input_ended(self) -> None:
        """The client half-closed the connection: no more input will come."""

    def send_signal(self, signum: int) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def cancel(self) -> None:
        """End it (a ``cancel``, a disconnect, a stall, or shutdown); it still
        reports its end, which may go nowhere."""

    def pause_output(self) -> None:
        """The client's side is full: stop producing output until resumed."""

    def resume_output(self) -> None: ...


class RequestHost(Protocol):
    """The session, as its requests see it."""

    server: Server
    origin: Origin

    @property
    def key(self) -> KeyRules:
        """The rules of the key the session authenticated with."""

    @property
    def output_paused(self) -> bool:
        """True while the client isn't reading: a new request starts paused."""

    def send(self, message: Message) -> None:
        """Send a frame of a running request."""

    def send_started(self, started: Started) -> None:
        """Send a command's ``started``, perhaps with its next frame."""

    def grant_credit(self, command_id: int, nbytes: int) -> None: ...

    def end(self, terminal: Terminal) -> None:
        """Send a request's terminal frame and forget the request."""


def refuse(
    host: RequestHost, request: Run | Put | Get, code: ErrorCode, message: str, **details: Any
) -> None:
    """End a request that never started: recorded with why (and ``details``
    of what was asked), answered with a command-scoped error."""
    host.server.emit(RequestRefused(host.origin, request.id, code.value, message, details))
    host.end(Error(code=code.value, message=message, fatal=False, id=request.id))
