"""Every message of the protocol as one type, and the one validator that turns
a raw JSON header into the right model in a single pass, dispatching on
``type``: ``MESSAGE_ADAPTER.validate_json(raw)``.

The models themselves are in _session_messages.py (handshake, error,
keepalive), _command_messages.py and _transfer_messages.py, on the base in
_message_base.py; what a valid field value is, in _fields.py.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

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

#: The one validator for every header: ``MESSAGE_ADAPTER.validate_json(raw)``.
MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)

__all__ = ["MESSAGE_ADAPTER", "Message"]
