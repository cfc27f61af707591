"""Frames: bytes ⇄ messages.

A frame is ``<i`` header length, that many bytes of a UTF-8 JSON object (the
header), then a body of exactly ``data_size`` bytes. ``FrameDecoder`` turns any
chunking of a byte stream into the same sequence of messages, and rejects a bad
declared length as soon as the 4 bytes declaring it have arrived.
"""

from __future__ import annotations

import struct

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ._messages import (
    CLIENT_MESSAGES,
    MESSAGE_ADAPTER,
    SERVER_MESSAGES,
    Message,
    MessageBase,
    Pty,
    ServerLimits,
    _BodyMessage,
)

HEADER_LENGTH = struct.Struct("<i")


def encode_header(message: MessageBase) -> bytes:
    """The length prefix and JSON header of ``message``, without its body."""
    header = message.__pydantic_serializer__.to_json(message)
    return HEADER_LENGTH.pack(len(header)) + header


def encode_frame(message: MessageBase) -> bytes:
    """Serialise ``message`` (header and, for messages with a body, the body)
    to bytes.

    Raises:
        LocalProtocolError: a message whose ``data_size`` does not match its
            body.
    """
    header = message.__pydantic_serializer__.to_json(message)
    if isinstance(message, _BodyMessage):
        body = message.data
        if len(body) != message.data_size:
            raise LocalProtocolError(ErrorCode.INTERNAL, "data_size does not match the data")
        return b"".join((HEADER_LENGTH.pack(len(header)), header, body))
    return HEADER_LENGTH.pack(len(header)) + header


_CODE_BY_PYDANTIC_ERROR = {
    "json_invalid": ErrorCode.HEADER_BAD_JSON,
    "dict_type": ErrorCode.HEADER_NOT_OBJECT,
    "model_type": ErrorCode.HEADER_NOT_OBJECT,
    "union_tag_not_found": ErrorCode.HEADER_UNKNOWN_TYPE,
    "union_tag_invalid": ErrorCode.HEADER_UNKNOWN_TYPE,
}


#: Every member name of every header model: the only strings an error message
#: may quote. A location can also hold a JSON object key chosen by the peer
#: (``env`` names), which must never be echoed back (protocol.md
#: [error.message.no_echo]), let alone a NUL that no ``error`` frame can carry.
_HEADER_MODELS: tuple[type[BaseModel], ...] = (
    *CLIENT_MESSAGES,
    *SERVER_MESSAGES,
    Pty,
    ServerLimits,
)
_FIELD_NAMES = frozenset(name for model in _HEADER_MODELS for name in model.model_fields)


def _describe(loc: tuple[int | str, ...]) -> str:
    return ".".join(
        str(part) if isinstance(part, int) or part in _FIELD_NAMES else "*" for part in loc
    )


def _check_json_numbers(raw: bytes | bytearray) -> None:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259 6) but
    pydantic's parser reads them; refuse them as bad JSON wherever they stand,
    even in a member that would be ignored (protocol.md [frame.header.json])."""
    # The substring test is cheap and nearly always false; only a header
    # that has one of the words (maybe inside a string) is parsed twice.
    if b"NaN" in raw or b"Infinity" in raw:
        try:
            from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
            raise RemoteProtocolError(
                ErrorCode.HEADER_BAD_JSON, "header is not valid UTF-8 JSON"
            ) from exc


def decode_header(raw: bytes | bytearray) -> Message:
    """Validate one raw JSON header into its message model.

    Raises:
        RemoteProtocolError: with the ``header.*`` code that names the fault.
            The message never quotes the input.
    """
    _check_json_numbers(raw)
    try:
        return MESSAGE_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        code = _CODE_BY_PYDANTIC_ERROR.get(first["type"], ErrorCode.HEADER_INVALID)
        if first["loc"]:
            # Only the header itself can be "not an object"; a member of the
            # wrong JSON type (``"env": []``) is a schema error.
            code = ErrorCode.HEADER_INVALID
        if code is ErrorCode.HEADER_INVALID:
            # The location names only our own field names, never peer input.
            where = _describe(first["loc"][1:]) or "header"
            detail = f"invalid field {where}: {first['type']}"
        else:
            detail = {
                ErrorCode.HEADER_BAD_JSON: "header is not valid UTF-8 JSON",
                ErrorCode.HEADER_NOT_OBJECT: "header is not a JSON object",
                ErrorCode.HEADER_UNKNOWN_TYPE: "header type is missing or unknown",
            }[code]
        raise RemoteProtocolError(code, detail[:200]) from exc


class FrameDecoder:
    """Incremental decoder: feed bytes in any chunking, take messages out.

    Limits are attributes so a connection can raise the header cap once the
    peer has authenticated.

    Bodies bypass the header buffer: once a header is decoded, the chunks that
    carry its body are kept as they arrived (slices, not copies) and joined
    once, so each body byte is copied once, and the buffer stays header-sized
    instead of growing and shrinking by whole bodies (which, for bulk output,
    costs a page fault per 4 KiB in the allocator).
    """

    def __init__(self, *, max_header: int, max_body: int) -> None:
        self.max_header = max_header
        self.max_body = max_body
        #: When set, ``raw_header`` keeps the length prefix and header of the
        #: last frame whose header was decoded (or failed to decode): the
        #: handshake's transcript is made of them.
        self.keep_raw = False
        self.raw_header = b""
        self._buffer = bytearray()  # bytes not yet known to be body bytes
        self._pending: _BodyMessage | None = None  # a header whose body is awaited
        self._body_parts: list[bytes | memoryview] = []
        self._body_missing = 0

    def feed(self, data: bytes) -> None:
        """Take received bytes; nothing is parsed until ``next_message``."""
        if self._body_missing and not self._buffer:
            self._take_body(data)
        else:
            self._buffer += data

    def _take_body(self, data: bytes) -> None:
        """Keep the part of ``data`` that belongs to the awaited body; the rest
        (the next frames) goes to the buffer."""
        if len(data) <= self._body_missing:
            self._body_parts.append(data)
            self._body_missing -= len(data)
            return
        view = memoryview(data)
        self._body_parts.append(view[: self._body_missing])
        self._buffer += view[self._body_missing :]
        self._body_missing = 0

    @property
    def mid_frame(self) -> bool:
        """True when part of a frame has been received but not all of it."""
        return bool(self._buffer) or self._pending is not None

    def next_message(self) -> Message | None:
        """Return the next complete message, or None until more bytes arrive.

        Raises:
            RemoteProtocolError: a bad length (``frame.bad_length``), a header
                over ``max_header`` (``frame.too_large``), a body over
                ``max_body`` (``frame.body_too_large``), or a bad header. Each is
                raised as soon as the bytes that prove it are buffered.
        """
        buffer = self._buffer
        if self._pending is None:
            if len(buffer) < 4:
                return None
            (length,) = HEADER_LENGTH.unpack_from(buffer)
            if length <= 0:
                raise RemoteProtocolError(
                    ErrorCode.FRAME_BAD_LENGTH, "header length must be positive"
                )
            if length > self.max_header:
                raise RemoteProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"header length exceeds the limit of {self.max_header} bytes",
                )
            if len(buffer) < 4 + length:
                return None
            if self.keep_raw:
                self.raw_header = bytes(buffer[: 4 + length])
            message = decode_header(buffer[4 : 4 + length])
            if message.data_size > self.max_body:
                # Checked before consuming the header, so that calling again
                # raises the same error instead of parsing the body as a frame.
                raise RemoteProtocolError(
                    ErrorCode.FRAME_BODY_TOO_LARGE,
                    f"data_size exceeds the limit of {self.max_body} bytes",
                )
            del buffer[: 4 + length]
            if message.data_size == 0:
                return message
            assert isinstance(message, _BodyMessage)  # the schema allows no other
            self._pending = message
            self._body_missing = message.data_size
            if buffer:  # body bytes that came with the header
                rest = bytes(buffer)
                buffer.clear()
                self._take_body(rest)
        if self._body_missing:
            return None
        pending = self._pending
        parts = self._body_parts
        body = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        self._body_parts = []
        self._pending = None
        assert pending is not None
        pending._attach_body(body)
        return pending  # type: ignore[return-value]
