"""Framing: bytes ⇄ messages, whatever the chunking (protocol.md section 2).

Tables of bytes in → messages (or an ErrorCode) out. Every valid case is run
whole, byte by byte, and at random cut points, as wsproto's frame tests do.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rexec.protocol import (
    PROTOCOL_MAX_BODY,
    PROTOCOL_MAX_HEADER,
    ErrorCode,
    FrameDecoder,
    LocalProtocolError,
    Ping,
    RemoteProtocolError,
    Stderr,
    Stdout,
    encode_frame,
)

from .helpers import FAST, byte_by_byte, decode_chunks, new_decoder, split
from .vectors import (
    BINARY_ALL_BYTES,
    CLIENT_STREAM,
    COVERED_TYPES,
    PING,
    SERVER_STREAM,
    VECTORS,
    Vector,
    _frame,
)

ALL_TYPES = {
    "hello", "auth", "auth_ok", "run", "stdin", "stdin_eof", "signal", "cancel", "resize",
    "started", "stdout", "stderr", "stdin_credit", "exit", "error", "ping", "pong",
}  # fmt: skip


def test_vectors_cover_every_message_type() -> None:
    # A type without a vector has no byte-exact check of its encoding.
    assert {cls.model_fields["type"].default for cls in COVERED_TYPES} == ALL_TYPES


# --- Valid frames --------------------------------------------------------------

CHUNKINGS = {
    "whole": lambda data: [data],
    "byte_by_byte": byte_by_byte,
    # A cut right after the length prefix and right after the header: the two
    # points where the decoder changes what it waits for.
    "after_prefix": lambda data: split(data, [4]),
    "prefix_split": lambda data: split(data, [1, 2, 3]),
}


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_decodes(vector: Vector, chunking: str) -> None:
    decoder = new_decoder()
    assert decode_chunks(decoder, CHUNKINGS[chunking](vector.wire)) == [vector.message]
    assert not decoder.mid_frame  # nothing left over, no body still awaited


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.canonical], ids=lambda v: v.name)
def test_vector_encodes(vector: Vector) -> None:
    assert encode_frame(vector.message) == vector.wire  # type: ignore[arg-type]


def test_body_bytes_are_verbatim() -> None:
    # [frame.body.binary]: NUL, invalid UTF-8 and every byte value survive.
    message = decode_chunks(
        new_decoder(),
        byte_by_byte(_frame(b'{"type":"stdout","id":2,"data_size":256}', BINARY_ALL_BYTES)),
    )[0]
    assert isinstance(message, Stdout)
    assert message.data == BINARY_ALL_BYTES


STREAMS = {
    "client": CLIENT_STREAM,
    "server": SERVER_STREAM,
    "all_vectors": VECTORS,
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_many_frames_in_one_chunk(name: str) -> None:
    # [frame.stream.chunking]: a single segment holding many frames.
    stream = STREAMS[name]
    data = b"".join(vector.wire for vector in stream)
    assert decode_chunks(new_decoder(), [data]) == [vector.message for vector in stream]


@pytest.mark.parametrize("name", list(STREAMS))
def test_stream_byte_by_byte(name: str) -> None:
    stream = STREAMS[name]
    data = b"".join(vector.wire for vector in stream)
    assert decode_chunks(new_decoder(), byte_by_byte(data)) == [v.message for v in stream]


@FAST
@given(
    stream=st.lists(st.sampled_from(VECTORS), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_stream_at_random_cuts(stream: list[Vector], cuts: list[int]) -> None:
    data = b"".join(vector.wire for vector in stream)
    decoder = new_decoder()
    assert decode_chunks(decoder, split(data, cuts)) == [v.message for v in stream]
    assert not decoder.mid_frame


def test_next_message_is_lazy() -> None:
    # Nothing is returned until the last byte of a frame; an incomplete frame
    # keeps mid_frame true, so EOF there is a truncation.
    decoder = new_decoder()
    for byte in byte_by_byte(PING.wire)[:-1]:
        decoder.feed(byte)
        assert decoder.next_message() is None
        assert decoder.mid_frame
    decoder.feed(PING.wire[-1:])
    assert decoder.next_message() == PING.message
    assert decoder.next_message() is None
    assert not decoder.mid_frame


def test_body_awaited_after_header() -> None:
    # A data frame's header alone is not a message: the body must follow.
    decoder = new_decoder()
    decoder.feed(_frame(b'{"type":"stdout","id":1,"data_size":3}'))
    assert decoder.next_message() is None
    assert decoder.mid_frame
    decoder.feed(b"xy")
    assert decoder.next_message() is None
    decoder.feed(b"z" + PING.wire)
    assert [decoder.next_message(), decoder.next_message()] == [
        Stdout.with_data(1, b"xyz"),
        PING.message,
    ]


def test_length_prefix_is_little_endian() -> None:
    # [frame.length.format]: '<i'. 80 00 00 00 is +128, a legal length (the
    # decoder waits for the header); a big-endian reader would see -2**31.
    decoder = new_decoder()
    decoder.feed(b"\x80\x00\x00\x00")
    assert decoder.next_message() is None
    assert struct.unpack("<i", b"\x80\x00\x00\x00") == (128,)


def test_duplicate_member_takes_the_last() -> None:
    # [frame.header.schema]: "a receiver that meets one takes the last".
    decoded = decode_chunks(new_decoder(), [_frame(b'{"type":"ping","seq":1,"seq":2}')])
    assert decoded == [Ping(seq=2)]


# --- Length failures, detected on the 4th byte -----------------------------------

PRE_AUTH = 4096  # the pre-authentication header cap of protocol.md section 7

LENGTH_FAILURES = [
    # (name, first 4 bytes, header cap, code)
    ("minus_one", b"\xff\xff\xff\xff", PRE_AUTH, ErrorCode.FRAME_BAD_LENGTH),
    ("most_negative", b"\x00\x00\x00\x80", PRE_AUTH, ErrorCode.FRAME_BAD_LENGTH),
    # 7f ff ff ff is -129 in '<i' (sign bit in the last byte), not 2**31-1.
    ("7f_ff_ff_ff", b"\x7f\xff\xff\xff", PRE_AUTH, ErrorCode.FRAME_BAD_LENGTH),
    ("zero", b"\x00\x00\x00\x00", PRE_AUTH, ErrorCode.FRAME_BAD_LENGTH),
    ("int32_max", b"\xff\xff\xff\x7f", PROTOCOL_MAX_HEADER, ErrorCode.FRAME_TOO_LARGE),
    ("limit_plus_one", struct.pack("<i", PRE_AUTH + 1), PRE_AUTH, ErrorCode.FRAME_TOO_LARGE),
    (
        "post_auth_limit_plus_one",
        struct.pack("<i", PROTOCOL_MAX_HEADER + 1),
        PROTOCOL_MAX_HEADER,
        ErrorCode.FRAME_TOO_LARGE,
    ),
    # Other protocols sent to our port: their first 4 bytes are a huge length.
    ("http_get", b"GET / HTTP/1.1\r\n", PRE_AUTH, ErrorCode.FRAME_TOO_LARGE),
    ("http_post", b"POST / HTTP/1.1\r\n", PRE_AUTH, ErrorCode.FRAME_TOO_LARGE),
    ("ssh", b"SSH-2.0-OpenSSH_9.6\r\n", PRE_AUTH, ErrorCode.FRAME_TOO_LARGE),
    # TLS record header (handshake, TLS 1.0 record version, length 0x0200) and
    # the start of a ClientHello.
    ("tls_client_hello", bytes.fromhex("16 03 01 02 00 01 00 01 fc 03 03"),
     PRE_AUTH, ErrorCode.FRAME_TOO_LARGE),
    # Even with the smallest record length, a TLS prefix is over 64 KiB.
    ("tls_short_record", bytes.fromhex("16030100"), PROTOCOL_MAX_HEADER,
     ErrorCode.FRAME_TOO_LARGE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("prefix", "cap", "code"),
    [case[1:] for case in LENGTH_FAILURES],
    ids=[case[0] for case in LENGTH_FAILURES],
)
def test_bad_length_detected_on_fourth_byte(prefix: bytes, cap: int, code: ErrorCode) -> None:
    # [frame.length.negative], [frame.length.limit]: decided by the 4 length
    # bytes alone, with nothing after them sent.
    decoder = FrameDecoder(max_header=cap, max_body=PROTOCOL_MAX_BODY)
    for byte in byte_by_byte(prefix[:3]):
        decoder.feed(byte)
        assert decoder.next_message() is None
    decoder.feed(prefix[3:4])
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_message()
    assert info.value.code is code
    # The error is sticky: asking again does not resynchronise on garbage.
    with pytest.raises(RemoteProtocolError):
        decoder.next_message()


@pytest.mark.parametrize("prefix", [b"GET ", b"POST", b"SSH-", b"\x16\x03\x01\x02"])
def test_cross_protocol_lengths_are_huge(prefix: bytes) -> None:
    # Every such prefix is far over any header cap. protocol.md quotes b"GET "
    # as 542,393,671. (design.md's 1,347,375,956 for b"POST" is the big-endian
    # reading; in '<i' it is 1,414,745,936.)
    (length,) = struct.unpack("<i", prefix)
    assert length > PROTOCOL_MAX_HEADER
    expected = {b"GET ": 542_393_671, b"POST": 1_414_745_936}
    assert length == expected.get(prefix, length)


@pytest.mark.parametrize("cap", [PRE_AUTH, PROTOCOL_MAX_HEADER, 100])
def test_header_length_boundary(cap: int) -> None:
    # A header of exactly the cap is accepted; one byte more is refused on the
    # 4th byte. JSON allows trailing whitespace, which pads the header.
    header = b'{"type":"ping","seq":7}'
    exact = _frame(header + b" " * (cap - len(header)))
    assert decode_chunks(FrameDecoder(max_header=cap, max_body=1), [exact]) == [Ping(seq=7)]
    over = _frame(header + b" " * (cap + 1 - len(header)))
    decoder = FrameDecoder(max_header=cap, max_body=1)
    decoder.feed(over[:4])
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_message()
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE


# --- Body size -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data_size",
    [PROTOCOL_MAX_BODY + 1, 2**31 - 1, 2**31, 2**63, 10**30],
    ids=["limit_plus_one", "int32_max", "int32_max_plus_one", "int64", "huge"],
)
def test_body_over_limit_detected_before_body(data_size: int) -> None:
    # [frame.body.limit]: decided by the header, before any body byte arrives,
    # and with frame.body_too_large whatever the magnitude.
    decoder = new_decoder()
    decoder.feed(_frame(b'{"type":"stdout","id":1,"data_size":%d}' % data_size))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_message()
    assert info.value.code is ErrorCode.FRAME_BODY_TOO_LARGE
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_message()  # sticky: the header is not consumed
    assert info.value.code is ErrorCode.FRAME_BODY_TOO_LARGE


def test_body_of_exactly_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_header=PRE_AUTH, max_body=10)
    decoder.feed(_frame(b'{"type":"stderr","id":1,"data_size":10}'))
    assert decoder.next_message() is None  # waiting for the body, not failing
    decoder.feed(b"0123456789")
    assert decoder.next_message() == Stderr.with_data(1, b"0123456789")


@pytest.mark.parametrize("data_size", [1, PROTOCOL_MAX_BODY + 1])
@pytest.mark.parametrize("kind", ["ping", "run", "stdin_eof"])
def test_data_size_on_bodiless_type(kind: str, data_size: int) -> None:
    # [frame.body.size]: only stdin, stdout and stderr carry a body.
    members = {
        "ping": b'"seq":1',
        "run": b'"id":1,"shell":"true"',
        "stdin_eof": b'"id":1',
    }[kind]
    header = b'{"type":"%s",%s,"data_size":%d}' % (kind.encode(), members, data_size)
    decoder = new_decoder()
    decoder.feed(_frame(header))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_message()
    assert info.value.code is ErrorCode.HEADER_INVALID


# --- Encoding ----------------------------------------------------------------------


def test_encode_refuses_data_size_mismatch() -> None:
    # Built without with_data: the header would promise 5 bytes and send none.
    with pytest.raises(LocalProtocolError) as info:
        encode_frame(Stdout(id=1, data_size=5))
    assert info.value.code is ErrorCode.INTERNAL
