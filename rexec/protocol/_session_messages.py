"""The messages of the connection itself, outside any command: the handshake
(``hello``, ``auth``, ``auth_ok``), ``error`` and the keepalive (``ping``,
``pong``).

``hello`` and ``error`` are server reports and extensible (protocol.md
[message.extensible]); ``auth`` and ``auth_ok`` carry a mac as their body
(protocol.md 3.1, computed in _handshake.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ._fields import (
    CommandId,
    Count,
    ErrorCodeText,
    Features,
    Hex32,
    MacBody,
    Text,
    empty_list,
)
from ._handshake import MAC_SIZE
from ._limits import MAX_INT32
from ._message_base import EXTENSIBLE, BodyMessage, MessageBase


class ServerLimits(BaseModel):
    """The limits a server enforces, announced in ``hello``."""

    model_config = EXTENSIBLE
    max_header: Annotated[int, Field(ge=1, le=MAX_INT32)]
    max_body: Annotated[int, Field(ge=1, le=MAX_INT32)]
    stdin_window: Annotated[int, Field(ge=1, le=MAX_INT32)]
    max_commands: Annotated[int, Field(ge=1, le=MAX_INT32)]


class Hello(MessageBase):
    """Server → client, first frame: versions spoken, features offered,
    challenge nonce, limits."""

    model_config = EXTENSIBLE
    type: Literal["hello"] = "hello"
    versions: Annotated[
        list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=1, max_length=16)
    ]
    features: Features = Field(default_factory=empty_list)
    nonce: Hex32
    server: Annotated[Text, Field(max_length=255)]
    limits: ServerLimits


class Auth(BodyMessage):
    """Client → server: the chosen version and features, the client nonce;
    the body is the client's mac over the transcript (protocol.md 3.1)."""

    type: Literal["auth"] = "auth"
    data_size: MacBody
    version: Annotated[int, Field(ge=1, le=65535)]
    features: Features = Field(default_factory=empty_list)
    nonce: Hex32

    @property
    def mac(self) -> bytes:
        return self._body

    @classmethod
    def unsigned(cls, *, version: int, nonce: str, features: Sequence[str] = ()) -> Auth:
        """The ``auth`` header to sign; its mac is attached by ``signed``."""
        return cls(data_size=MAC_SIZE, version=version, nonce=nonce, features=list(features))

    def signed(self, mac: bytes) -> Auth:
        """This ``auth`` with ``mac`` as its body."""
        if len(mac) != MAC_SIZE:
            raise ValueError(f"a mac is {MAC_SIZE} bytes")
        message = self.model_copy()
        message._attach_body(mac)
        return message


class AuthOk(BodyMessage):
    """Server → client: authentication accepted; the body is the server's mac."""

    type: Literal["auth_ok"] = "auth_ok"
    data_size: MacBody

    @property
    def mac(self) -> bytes:
        return self._body

    @classmethod
    def with_mac(cls, mac: bytes) -> AuthOk:
        if len(mac) != MAC_SIZE:
            raise ValueError(f"a mac is {MAC_SIZE} bytes")
        message = cls(data_size=MAC_SIZE)
        message._attach_body(mac)
        return message


class Error(MessageBase):
    """An error report. With ``id`` it is the terminal frame of that command;
    with ``fatal`` the sender closes the connection after it."""

    model_config = EXTENSIBLE
    type: Literal["error"] = "error"
    code: ErrorCodeText
    message: Annotated[Text, Field(max_length=200)]
    fatal: bool
    id: CommandId | None = None


class _Keepalive(MessageBase):
    seq: Count


class Ping(_Keepalive):
    """Keepalive probe; the peer answers with a ``pong`` carrying the same seq."""

    type: Literal["ping"] = "ping"


class Pong(_Keepalive):
    """Keepalive answer."""

    type: Literal["pong"] = "pong"


SessionMessage = Hello | Auth | AuthOk | Error | Ping | Pong
#: What each side sends of these (a client never says ``hello``).
CLIENT_SENDS: tuple[type[MessageBase], ...] = (Auth, Error, Ping, Pong)
SERVER_SENDS: tuple[type[MessageBase], ...] = (Hello, AuthOk, Error, Ping, Pong)

__all__ = ["Auth", "AuthOk", "Error", "Hello", "Ping", "Pong", "ServerLimits"]
