"""What the server tells its observers (metrics, for one), and nothing more.

The server calls these hooks where the events happen; an observer counts them
and never sends, refuses or delays anything. The server holds an observer
through this interface only, so it never imports what observes it
(rexec.ops.metrics implements it; rexec.daemon wires them together).
"""

from __future__ import annotations

from typing import Protocol

from rexec.server.runner import Outcome, Stream


class ServerObserver(Protocol):
    """Hooks called by the server, on its event loop; each must return at once."""

    def connection_opened(self) -> None: ...

    def admission_refused(self) -> None: ...

    def auth_failed(self, reason: str) -> None: ...

    def command_started(self) -> None: ...

    def command_finished(self, outcome: Outcome) -> None: ...

    def refused(self, code: str) -> None: ...

    def output(self, stream: Stream, nbytes: int) -> None: ...


class NoObserver:
    """The observer of a server nobody watches."""

    def connection_opened(self) -> None:
        pass

    def admission_refused(self) -> None:
        pass

    def auth_failed(self, reason: str) -> None:
        pass

    def command_started(self) -> None:
        pass

    def command_finished(self, outcome: Outcome) -> None:
        pass

    def refused(self, code: str) -> None:
        pass

    def output(self, stream: Stream, nbytes: int) -> None:
        pass
