"""The table of legal transitions of a connection.

A connection goes HANDSHAKE → OPEN → CLOSED. In HANDSHAKE the only legal
frames are the handshake's, in its order (_handshake_steps.py); in OPEN the command frames of each
direction; a fatal ``error`` either way, or the end of the stream, closes it.
A protocol error by the peer puts it in ERROR, from which the only way on is
a fatal ``error`` frame, sent, to CLOSED. Per-command rules (ids, stdin
credit, terminal frames) live in _commands.py.
"""

from __future__ import annotations

import enum

from ._message_base import MessageBase
from ._messages import CLIENT_MESSAGES, SERVER_MESSAGES
from ._session_messages import Auth, AuthOk, Hello


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class ConnectionState(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    #: The peer broke the protocol: nothing more is read; only a fatal
    #: ``error`` may still be sent.
    ERROR = "error"
    CLOSED = "closed"


Kinds = tuple[type[MessageBase], ...]

_HANDSHAKE: Kinds = (Hello, Auth, AuthOk)
#: What each role may send once the connection is open: all it sends but the
#: handshake's frames.
OPEN_SENDS: dict[Role, Kinds] = {
    Role.CLIENT: tuple(kind for kind in CLIENT_MESSAGES if kind not in _HANDSHAKE),
    Role.SERVER: tuple(kind for kind in SERVER_MESSAGES if kind not in _HANDSHAKE),
}


def other(role: Role) -> Role:
    return Role.SERVER if role is Role.CLIENT else Role.CLIENT


__all__ = ["ConnectionState", "Role"]
