"""The table of legal transitions of a connection.

A connection goes HANDSHAKE → OPEN → CLOSED. In HANDSHAKE the only legal
frames are the handshake's, in its order; in OPEN the command frames of each
direction; a fatal ``error`` either way, or the end of the stream, closes it.
A protocol error by the peer puts it in ERROR, from which the only way on is
a fatal ``error`` frame, sent, to CLOSED. Per-command rules (ids, stdin
credit, terminal frames) live in _commands.py.
"""

from __future__ import annotations

import enum

from ._messages import (
    Auth,
    AuthOk,
    Cancel,
    Done,
    Error,
    Exit,
    File,
    Get,
    Hello,
    MessageBase,
    Ping,
    Pong,
    Put,
    Resize,
    Run,
    Signal,
    Started,
    Stderr,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
)


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


class HandshakeStep(enum.Enum):
    """Where the handshake stands; each step names the frame awaited next."""

    HELLO = "hello"  # the server has yet to send (client: receive) hello
    AUTH = "auth"  # the client has yet to send (server: receive) auth
    AUTH_OK = "auth_ok"  # the server has yet to send (client: receive) auth_ok
    DONE = "done"


Kinds = tuple[type[MessageBase], ...]

#: What each role may send once the connection is open.
OPEN_SENDS: dict[Role, Kinds] = {
    Role.CLIENT: (Run, Put, Get, Stdin, StdinEof, Signal, Cancel, Resize, Ping, Pong, Error),
    Role.SERVER: (Started, Stdout, Stderr, StdinCredit, Exit, File, Done, Error, Ping, Pong),
}

#: The frame each handshake step expects, and the step that follows it.
HANDSHAKE_STEPS: dict[HandshakeStep, tuple[type[MessageBase], Role, HandshakeStep]] = {
    HandshakeStep.HELLO: (Hello, Role.SERVER, HandshakeStep.AUTH),
    HandshakeStep.AUTH: (Auth, Role.CLIENT, HandshakeStep.AUTH_OK),
    HandshakeStep.AUTH_OK: (AuthOk, Role.SERVER, HandshakeStep.DONE),
}


def other(role: Role) -> Role:
    return Role.SERVER if role is Role.CLIENT else Role.CLIENT
