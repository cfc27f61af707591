"""What every message of the protocol is: a frozen, strict pydantic model with
a ``type`` and a ``data_size``, and, for the five that carry one, a body.

Every model is strict (no coercion: ``"5"`` is not an int, ``1`` is not a
bool), refuses non-finite numbers, and is immutable. ``CLOSED`` models refuse
an unknown member; ``EXTENSIBLE`` ones (the server's reports) drop it
(protocol.md [message.extensible]). The concrete messages are in
_session_messages.py, _command_messages.py and _transfer_messages.py.

A body (``stdin``, ``stdout`` and ``stderr`` bytes, the mac of ``auth`` and
``auth_ok``) follows the header on the wire; the header declares its
``data_size``, and the bytes are available as ``message.data``.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict

from ._fields import CommandId, DataSize, NoBody

#: ``defer_build``: a model's validator and serializer are built the first time
#: it is used, not at import. A cold ``rexec run`` meets 8 of the 21 message
#: types; building all of them cost it ~88 ms of CPU (bench/SPEED2_RESULTS.md).
CLOSED = ConfigDict(frozen=True, strict=True, extra="forbid", allow_inf_nan=False, defer_build=True)
#: Objects a receiver must accept with members it does not know (protocol.md
#: [message.extensible]): they are dropped, never stored, never echoed.
EXTENSIBLE = ConfigDict(
    frozen=True, strict=True, extra="ignore", allow_inf_nan=False, defer_build=True
)


class MessageBase(BaseModel):
    """What every message has: a ``type``, and the ``data_size`` of its body
    (0 for the messages that carry none). The public base of every message,
    for annotations and ``isinstance``."""

    model_config = CLOSED

    #: Whether frames of this type carry a body of ``data_size`` bytes.
    has_body: ClassVar[bool] = False

    # Declared here so that every header serialises with its type first.
    type: str
    data_size: NoBody = 0


class BodyMessage(MessageBase):
    """A message whose payload bytes travel in the frame's body.

    The body is kept in the instance's ``__dict__`` beside the fields (which
    validation and serialisation never look at), not as a pydantic private
    attribute: a model with private attributes runs a post-init hook for
    every instance, which costs more than the rest of decoding a frame.
    """

    has_body: ClassVar[bool] = True
    _body: ClassVar[bytes] = b""  # the class default; each message sets its own

    @property
    def data(self) -> bytes:
        """The body bytes; ``len(data) == data_size``."""
        return self._body

    def _attach_body(self, body: bytes) -> None:
        # Called once, by the decoder or by a constructor here, before the
        # message is handed out. Frozen models refuse setattr.
        object.__setattr__(self, "_body", body)

    def __eq__(self, other: object) -> bool:
        # pydantic compares fields only; two frames are equal bodies included.
        return (
            super().__eq__(other) is True
            and isinstance(other, BodyMessage)
            and self._body == other._body
        )

    def __hash__(self) -> int:
        return hash((super().__hash__(), self._body))


class DataMessage(BodyMessage):
    """Command bytes: a body of any size, for the command ``id``."""

    id: CommandId
    data_size: DataSize = 0

    @classmethod
    def with_data(cls, id: int, data: bytes) -> Self:
        """Build the message for ``data``, with ``data_size`` set to match."""
        # ``type`` has a default in every concrete subclass; mypy only sees
        # this abstract base, where it has none.
        message = cls(id=id, data_size=len(data))  # type: ignore[call-arg]
        message._attach_body(data)
        return message


__all__ = ["MessageBase"]
