"""Frames: bytes ⇄ messages.

A frame is ``<i`` header length, that many bytes of a UTF-8 JSON object (the
header), then a body of exactly ``data_size`` bytes. ``FrameDecoder`` turns any
chunking of a byte stream into the same sequence of messages, and rejects a bad
declared length as soon as the 4 bytes declaring it have arrived.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Callable

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from ._command_messages import Pty
from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ._message_base import BodyMessage, MessageBase
from ._messages import CLIENT_MESSAGES, MODEL_BY_TYPE, SERVER_MESSAGES, Message
from ._session_messages import ServerLimits

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
    if isinstance(message, BodyMessage):
        body = message.data
        if len(body) != message.data_size:
            raise LocalProtocolError(ErrorCode.INTERNAL, "data_size does not match the data")
        return b"".join((HEADER_LENGTH.pack(len(header)), header, body))
    return HEADER_LENGTH.pack(len(header)) + header


_DETAIL_BY_CODE = {
    ErrorCode.HEADER_BAD_JSON: "header is not valid UTF-8 JSON",
    ErrorCode.HEADER_NOT_OBJECT: "header is not a JSON object",
    ErrorCode.HEADER_UNKNOWN_TYPE: "header type is missing or unknown",
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


def _fault(code: ErrorCode) -> RemoteProtocolError:
    return RemoteProtocolError(code, _DETAIL_BY_CODE[code])


#: Each type's compiled validator, once a header of that type has been seen.
_VALIDATORS: dict[str, Callable[[bytes | bytearray], Message]] = {}


def _validator(type_name: str) -> Callable[[bytes | bytearray], Message]:
    validate = _VALIDATORS.get(type_name)
    if validate is None:
        model = MODEL_BY_TYPE[type_name]
        model.model_rebuild()  # builds a deferred model; nothing once built
        # The compiled validator itself: straight from the bytes, without a
        # Python wrapper per call.
        validate = _VALIDATORS[type_name] = model.__pydantic_validator__.validate_json
    return validate


def decode_header(raw: bytes | bytearray) -> Message:
    """Validate one raw JSON header into its message model: the model its
    ``type`` names, and only that one is built.

    Raises:
        RemoteProtocolError: with the ``header.*`` code that names the fault.
            The message never quotes the input.
    """
    _check_json_numbers(raw)
    try:
        header = from_json(raw)
    except ValueError as exc:
        raise _fault(ErrorCode.HEADER_BAD_JSON) from exc
    if not isinstance(header, dict):
        raise _fault(ErrorCode.HEADER_NOT_OBJECT)
    type_name = header.get("type")
    if not isinstance(type_name, str) or type_name not in MODEL_BY_TYPE:
        raise _fault(ErrorCode.HEADER_UNKNOWN_TYPE)
    try:
        return _validator(type_name)(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        # The location names only our own field names, never peer input.
        where = _describe(first["loc"]) or "header"
        detail = f"invalid field {where}: {first['type']}"
        raise RemoteProtocolError(ErrorCode.HEADER_INVALID, detail[:200]) from exc


class FrameDecoder:
    """Incremental decoder: feed bytes in any chunking, take messages out.

    Limits are attributes so a connection can raise the header cap once the
    peer has authenticated.

    Received chunks are kept as they arrived, and read through memoryviews:
    a header is copied once (to validate it), a body is sliced out of the
    chunks that carry it and joined once (not at all when one chunk is exactly
    the body), and the bytes behind a frame are never moved. A buffer that
    grew and shrank by whole bodies would cost a page fault per 4 KiB for
    bulk output; one that copied what follows each frame, a copy of the rest
    of every read per frame in it.
    """

    def __init__(self, *, max_header: int, max_body: int) -> None:
        self.max_header = max_header
        self.max_body = max_body
        #: When set, ``raw_header`` keeps the length prefix and header of the
        #: last frame whose header was decoded (or failed to decode): the
        #: handshake's transcript is made of them.
        self.keep_raw = False
        self.raw_header = b""
        self._input: collections.deque[memoryview] = collections.deque()  # unread, in order
        self._unread = 0  # bytes in _input
        self._pending: BodyMessage | None = None  # a header whose body is awaited
        self._body_parts: list[memoryview] = []
        self._body_missing = 0

    def feed(self, data: bytes) -> None:
        """Take received bytes; nothing is parsed until ``next_message``."""
        if data:
            self._input.append(memoryview(data))
            self._unread += len(data)

    @property
    def mid_frame(self) -> bool:
        """True when part of a frame has been received but not all of it."""
        return self._unread > 0 or self._pending is not None

    def next_message(self) -> Message | None:
        """Return the next complete message, or None until more bytes arrive.

        Raises:
            RemoteProtocolError: a bad length (``frame.bad_length``), a header
                over ``max_header`` (``frame.too_large``), a body over
                ``max_body`` (``frame.body_too_large``), or a bad header. Each is
                raised as soon as the bytes that prove it are buffered, and
                again on a later call (nothing is consumed).
        """
        if self._pending is None:
            message = self._next_header()
            if message is None or message.data_size == 0:
                return message
            assert isinstance(message, BodyMessage)  # the schema allows no other
            self._pending = message
            self._body_missing = message.data_size
        return self._next_body()

    def _next_header(self) -> Message | None:
        if self._unread < 4:
            return None
        first = self._input[0]
        (length,) = HEADER_LENGTH.unpack_from(first if len(first) >= 4 else self._peek(4))
        if length <= 0:
            raise RemoteProtocolError(ErrorCode.FRAME_BAD_LENGTH, "header length must be positive")
        if length > self.max_header:
            raise RemoteProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"header length exceeds the limit of {self.max_header} bytes",
            )
        if self._unread < 4 + length:
            return None
        # Nearly always within one chunk: then the header is its one copy.
        header = (
            bytes(first[4 : 4 + length])
            if len(first) >= 4 + length
            else (self._peek(4 + length)[4:])
        )
        if self.keep_raw:
            self.raw_header = HEADER_LENGTH.pack(length) + header
        message = decode_header(header)
        if message.data_size > self.max_body:
            # Checked before consuming the header, so that calling again
            # raises the same error instead of parsing the body as a frame.
            raise RemoteProtocolError(
                ErrorCode.FRAME_BODY_TOO_LARGE,
                f"data_size exceeds the limit of {self.max_body} bytes",
            )
        self._skip(4 + length)
        return message

    def _next_body(self) -> Message | None:
        """Slice the awaited body out of the input; the message once whole."""
        parts, queue = self._body_parts, self._input
        while self._body_missing and queue:
            view = queue[0]
            if len(view) <= self._body_missing:
                parts.append(queue.popleft())
                taken = len(view)
            else:
                taken = self._body_missing
                parts.append(view[:taken])
                queue[0] = view[taken:]
            self._body_missing -= taken
            self._unread -= taken
        if self._body_missing:
            return None
        first = parts[0]
        if len(parts) == 1 and isinstance(first.obj, bytes) and len(first) == len(first.obj):
            body = first.obj  # a chunk that is exactly the body: no copy
        else:
            body = b"".join(parts)
        self._body_parts = []
        pending, self._pending = self._pending, None
        assert pending is not None
        pending._attach_body(body)
        return pending  # type: ignore[return-value]

    def _peek(self, size: int) -> bytes:
        """The next ``size`` unread bytes (``size`` <= unread), not consumed."""
        first = self._input[0]
        if len(first) >= size:
            return bytes(first[:size])
        out = bytearray()
        for view in self._input:
            out += view[: size - len(out)]
            if len(out) == size:
                break
        return bytes(out)

    def _skip(self, size: int) -> None:
        """Consume ``size`` unread bytes."""
        self._unread -= size
        queue = self._input
        while size:
            view = queue[0]
            if len(view) <= size:
                queue.popleft()
                size -= len(view)
            else:
                queue[0] = view[size:]
                size = 0


__all__ = ["HEADER_LENGTH", "FrameDecoder", "decode_header", "encode_frame", "encode_header"]
