"""A server that says it is shutting down while ``rexec shell`` waits at its prompt.

rexecd tells each connection as soon as it starts to shut down (a non-fatal
``server.shutting_down`` without a command ``id``), then gives running
commands a grace before it ends them, the remote shell among them. A line
typed in that grace would run on a server that is going away, and the user
would hear of it one line late. So, as ssh prints "Connection to HOST closed
by remote host.", the notice is said at once in one line above the prompt;
the next line typed is not run (it goes into the history) and the session
goes to the offer to reconnect, as for a lost connection.
"""

from __future__ import annotations

import asyncio

from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.application.current import get_app_or_none

from ..connection import ClientConnection
from ..errors import RexecConnectionError
from .display import say

SHUTTING_DOWN = "server.shutting_down"


class ServerLeaving:
    """Whether the current connection's server said it is shutting down.

    Attributes:
        error: what ends the session's use of the connection once it has
            (said already), else None.
    """

    def __init__(self) -> None:
        self.error: RexecConnectionError | None = None

    async def watch(self, connection: ClientConnection) -> None:
        """Wait for ``connection``'s notice; when it is the server shutting
        down, say so (once), above the prompt if one is shown."""
        notice = await asyncio.shield(connection.notice)
        if notice.code != SHUTTING_DOWN or self.error is not None:
            return
        self.error = RexecConnectionError(
            f"connection to {connection.peer} closing: {notice.message} ({notice.code})",
            SHUTTING_DOWN,
        )
        message = str(self.error)
        app = get_app_or_none()
        if app is not None and app.is_running and not app.is_done:
            await run_in_terminal(lambda: say(message), in_executor=False)
        else:
            say(message)

    def said(self) -> bool:
        """Whether the user knows already that the connection is going (its
        loss, which follows, needs no line of its own)."""
        return self.error is not None
