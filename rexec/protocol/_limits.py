"""Protocol limits: every bound a peer enforces, with the reason for its default.

A server announces the limits it enforces in its ``hello`` message, so a client
never has to guess them. Each limit is checked as soon as the value it bounds
arrives on the wire, never after buffering it.
"""

from __future__ import annotations

import dataclasses

KiB = 1024
MiB = 1024 * KiB

#: Header cap before authentication. The handshake messages are a few hundred
#: bytes; a small cap keeps an unauthenticated peer from making us buffer much.
PRE_AUTH_MAX_HEADER = 4 * KiB

#: Header cap after authentication. A ``run`` header carries argv and env, which
#: can be large but never approach this; anything bigger is garbage or an attack.
MAX_HEADER = 64 * KiB

#: Body cap of one frame. Large enough that bulk output travels at full speed
#: (per-frame overhead is amortised over 256 KiB reads), small enough that one
#: frame never holds a large share of memory.
MAX_BODY = 1 * MiB

#: Initial stdin credit per command, in bytes: how much stdin a client may send
#: before the server grants more. It bounds the server's per-command stdin
#: buffer, and is large enough to keep a loopback pipe busy between grants.
STDIN_WINDOW = 256 * KiB

#: Concurrent commands on one connection. Over it, a ``run`` is refused with
#: the command-scoped ``busy`` error, never queued.
MAX_COMMANDS_PER_CONNECTION = 64

#: The largest integer every JSON implementation reads exactly (RFC 7493,
#: I-JSON; JavaScript's numbers included). Command ids, ping sequence numbers,
#: byte counts and sizes stay within it.
MAX_SAFE_INTEGER = 2**53 - 1

#: Command ids are JSON numbers, exact everywhere below 2**53.
MAX_COMMAND_ID = MAX_SAFE_INTEGER

#: The bound of a limit announced in ``hello``, of a pid and of one stdin
#: grant: what a signed 32-bit integer holds (a frame's header length is one).
MAX_INT32 = 2**31 - 1

#: The longest duration a message carries, in seconds (a ``run``'s timeout,
#: an ``exit``'s duration): about 68 years, far beyond any command, and small
#: enough for every clock and timer API to take.
MAX_SECONDS = float(MAX_INT32)


@dataclasses.dataclass(frozen=True)
class Limits:
    """The bounds one side of a connection enforces on what it receives.

    Attributes:
        max_header: largest header accepted once authenticated, in bytes.
        pre_auth_max_header: largest header accepted before authentication.
        max_body: largest body of one frame, in bytes.
        stdin_window: initial stdin credit per command, in bytes.
        max_commands: concurrent commands allowed on one connection.
    """

    max_header: int = MAX_HEADER
    pre_auth_max_header: int = PRE_AUTH_MAX_HEADER
    max_body: int = MAX_BODY
    stdin_window: int = STDIN_WINDOW
    max_commands: int = MAX_COMMANDS_PER_CONNECTION

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"limit {field.name} must be positive")
        if self.pre_auth_max_header > self.max_header:
            raise ValueError("pre_auth_max_header must not exceed max_header")


__all__ = ["MAX_SAFE_INTEGER", "Limits"]
