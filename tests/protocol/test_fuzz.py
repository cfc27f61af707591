"""Fuzzing: whatever the peer sends, the protocol core raises only
RemoteProtocolError (never a pydantic ValidationError, struct.error,
UnicodeDecodeError, KeyError, ...), and every such error can be reported to
the peer as a valid ``error`` frame.

Example counts are bounded so this file runs in a few seconds.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from rexec.protocol import (
    Connection,
    Error,
    FrameDecoder,
    Limits,
    RemoteProtocolError,
    Role,
    decode_header,
    encode_frame,
)

from .helpers import FAST, open_pair, split
from .vectors import CLIENT_STREAM, HELLO, SERVER_STREAM, VECTORS, _frame

FIELD_NAMES = [
    "type", "data_size", "id", "seq", "argv", "shell", "cwd", "env", "stdin", "timeout",
    "output_limit", "pty", "rows", "cols", "term", "signal", "bytes", "pid", "exit_code",
    "signal_name", "timed_out", "cancelled", "output_capped", "pipes_held", "duration",
    "stdout_bytes", "stderr_bytes", "stdin_bytes", "code", "message", "fatal", "versions",
    "nonce", "server", "limits", "max_header", "max_body", "stdin_window", "max_commands",
    "version", "mac",
]  # fmt: skip
TYPES = [
    "hello", "auth", "auth_ok", "run", "stdin", "stdin_eof", "signal", "cancel", "resize",
    "started", "stdout", "stderr", "stdin_credit", "exit", "error", "ping", "pong",
]  # fmt: skip

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["SIGINT", "\x00", "a" * 64, "internal", "\ud7ff"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=12,
)
# Objects shaped like headers: a known type and members with known names, so
# the validators (not just the JSON parser) see the odd values.
header_objects = st.builds(
    lambda type_, members: {"type": type_, **members},
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(FIELD_NAMES[1:]), json_values, max_size=8),
)


def assert_reportable(error: RemoteProtocolError) -> None:
    """The shell answers a RemoteProtocolError with Error(code, message): that
    construction must never fail."""
    Error(code=error.code.value, message=error.message, fatal=True)


def drain_decoder(data_chunks: list[bytes], limits: Limits) -> None:
    decoder = FrameDecoder(max_header=limits.max_header, max_body=limits.max_body)
    try:
        for chunk in data_chunks:
            decoder.feed(chunk)
            while decoder.next_message() is not None:
                pass
    except RemoteProtocolError as error:
        assert_reportable(error)


def drain_connection(connection: Connection, data_chunks: list[bytes]) -> None:
    try:
        for chunk in [*data_chunks, b""]:
            connection.receive_data(chunk)
            while connection.next_event() is not None:
                pass
    except RemoteProtocolError as error:
        assert_reportable(error)


SMALL = Limits(max_header=512, pre_auth_max_header=256, max_body=64)


@FAST
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5))
def test_arbitrary_bytes_decoder(data: bytes, cuts: list[int]) -> None:
    drain_decoder(split(data, cuts), Limits())
    drain_decoder(split(data, cuts), SMALL)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_behind_a_valid_length(body: bytes) -> None:
    # Random bytes are mostly rejected on their length; this reaches the JSON
    # parser and the validators with arbitrary header bytes.
    drain_decoder([_frame(body) if body else b""], Limits())


@FAST
@given(st.one_of(header_objects, json_values))
def test_arbitrary_json(value: object) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        decode_header(raw)
    except RemoteProtocolError as error:
        assert_reportable(error)


@FAST
@given(header_objects)
def test_whatever_decodes_re_encodes_and_decodes_the_same(value: dict[str, object]) -> None:
    # A message that passed validation is a legal message: our own encoder
    # accepts it, and the bytes decode to the same message.
    try:
        message = decode_header(json.dumps(value).encode())
    except RemoteProtocolError:
        return
    if message.data_size:
        return  # a data header without its body: not a whole message
    assert decode_header(encode_frame(message)[4:]) == message


@FAST
@given(
    role=st.sampled_from([Role.CLIENT, Role.SERVER]),
    data=st.binary(max_size=400),
    cuts=st.lists(st.integers(0, 400), max_size=5),
)
def test_arbitrary_bytes_connection_fresh(role: Role, data: bytes, cuts: list[int]) -> None:
    connection = Connection(role)
    if role is Role.SERVER:
        connection.send(HELLO.message)  # type: ignore[arg-type]
    drain_connection(connection, split(data, cuts))


@FAST
@given(
    role=st.sampled_from([Role.CLIENT, Role.SERVER]),
    frames=st.lists(st.sampled_from(VECTORS), max_size=6),
    data=st.binary(max_size=200),
    cuts=st.lists(st.integers(0, 3000), max_size=5),
)
def test_valid_frames_out_of_order_connection(
    role: Role, frames: list[object], data: bytes, cuts: list[int]
) -> None:
    # Well-formed frames in an arbitrary order (with arbitrary bytes behind):
    # only state errors, always as RemoteProtocolError.
    client, server = open_pair()
    stream = b"".join(v.wire for v in frames) + data  # type: ignore[attr-defined]
    drain_connection(client if role is Role.CLIENT else server, split(stream, cuts))


mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "set"]),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=255),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, position, value in mutations:
        if not buf:
            break
        at = position % len(buf)
        if kind == "flip":
            buf[at] ^= 1 << (value % 8)
        elif kind == "set":
            buf[at] = value
        elif kind == "insert":
            buf.insert(at, value)
        elif kind == "delete":
            del buf[at]
        else:
            del buf[at:]
    return bytes(buf)


CLIENT_BYTES = b"".join(v.wire for v in CLIENT_STREAM[1:])
SERVER_BYTES = b"".join(v.wire for v in SERVER_STREAM[2:])


@FAST
@given(
    to_server=st.booleans(),
    mutations=st.lists(mutation, min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 1500), max_size=5),
)
def test_mutated_conversation(
    to_server: bool, mutations: list[tuple[str, int, int]], cuts: list[int]
) -> None:
    client, server = open_pair()
    if to_server:
        receiver, data = server, CLIENT_BYTES
    else:
        # The client must have sent the runs the server's frames refer to.
        for vector in CLIENT_STREAM[1:]:
            client.send(vector.message)  # type: ignore[arg-type]
        receiver, data = client, SERVER_BYTES
    drain_connection(receiver, split(mutate(data, mutations), cuts))


@FAST
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_handshake(mutations: list[tuple[str, int, int]]) -> None:
    drain_connection(Connection(Role.CLIENT), [mutate(HELLO.wire, mutations)])
