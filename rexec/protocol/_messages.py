"""Every message of the protocol as one type (``Message``, for annotations), and
each message's model by its ``type`` (``MODEL_BY_TYPE``): a header is
validated by the one model its ``type`` names (see _framing.py), so that a
program builds the validators of the messages it meets, not of all of them.

The models themselves are in _session_messages.py (handshake, error,
keepalive), _command_messages.py and _transfer_messages.py, on the base in
_message_base.py; what a valid field value is, in _fields.py.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from . import _command_messages, _session_messages, _transfer_messages
from ._command_messages import CommandMessage
from ._message_base import MessageBase
from ._session_messages import SessionMessage
from ._transfer_messages import TransferMessage

#: Types a client may send, and types a server may send.
CLIENT_MESSAGES: tuple[type[MessageBase], ...] = (
    *_session_messages.CLIENT_SENDS,
    *_command_messages.CLIENT_SENDS,
    *_transfer_messages.CLIENT_SENDS,
)
SERVER_MESSAGES: tuple[type[MessageBase], ...] = (
    *_session_messages.SERVER_SENDS,
    *_command_messages.SERVER_SENDS,
    *_transfer_messages.SERVER_SENDS,
)

Message = Annotated[SessionMessage | CommandMessage | TransferMessage, Field(discriminator="type")]

#: Each message's model, by the ``type`` its header names.
MODEL_BY_TYPE: dict[str, type[MessageBase]] = {
    model.model_fields["type"].default: model for model in (*CLIENT_MESSAGES, *SERVER_MESSAGES)
}

__all__ = ["MODEL_BY_TYPE", "Message"]
