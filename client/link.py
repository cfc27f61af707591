"""The two sides of the link between a connection and one of its commands:
``CommandLink``, what a remote command needs from the connection carrying it,
and ``CommandHandler``, what the connection feeds that command's frames to.

``RemoteProcess`` and ``StdinWriter`` are given a link rather than the
``ClientConnection`` itself, so that data flows one way through the imports:
the connection creates processes and feeds them frames; a process only sends
through its link.
"""

from __future__ import annotations

from typing import Protocol

from rexec.protocol import Message

from .errors import RexecConnectionError


class CommandLink(Protocol):
    """The sending side of a connection, as one command sees it."""

    @property
    def max_body(self) -> int:
        """The largest body the peer accepts in one frame."""

    def stdin_credit(self, command_id: int) -> int:
        """Stdin bytes the command may send now (0 once its stdin is closed)."""

    def send_nowait(self, message: Message) -> None:
        """Queue ``message`` without waiting (signals, cancels)."""

    async def send(self, message: Message) -> None:
        """Send ``message``, waiting while the connection's buffer is full."""


class CommandHandler(Protocol):
    """What the connection feeds the frames of one command id to: a
    ``RemoteProcess`` for a ``run``, a transfer (``rexec_client.transfer``)
    for a ``put`` or ``get``."""

    def handle(self, message: object) -> None: ...

    def connection_lost(self, error: RexecConnectionError) -> None: ...

    @property
    def needs_room(self) -> bool: ...

    async def wait_for_room(self) -> None: ...
