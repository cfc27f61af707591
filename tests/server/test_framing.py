"""Framing and header errors against the real server: each gets the error code
protocol.md names, the server closes within 1 s, and it keeps serving others."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from .wire import Wire, raw_frame, run_once, wait_gone


def assert_still_serving(server) -> None:
    """A fresh connection authenticates and runs a command."""
    result = run_once(server, ["echo", "still here"], timeout=5)
    assert result.exit is not None and result.exit.exit_code == 0
    assert bytes(result.stdout) == b"still here\n"


def raw_wire(server) -> Wire:
    wire = Wire.open(server.host, server.port, key=server.key)
    wire.read_hello(5)
    return wire


# --- header length ------------------------------------------------------------------


# The brief and the checklist write the lengths as 32-bit values, most
# significant byte first (ff ff ff ff, 80 00 00 00, 00 00 00 00, 7f ff ff ff):
# -1, INT32_MIN, 0 and INT32_MAX. On the wire they go as '<i'.
LENGTHS = [
    (-1, "frame.bad_length"),
    (-(2**31), "frame.bad_length"),
    (0, "frame.bad_length"),
    (2**31 - 1, "frame.too_large"),
    (-129, "frame.bad_length"),  # the bytes 7f ff ff ff read as '<i'
]
LENGTH_IDS = ["ffffffff", "80000000", "00000000", "7fffffff", "wire-7fffffff"]


@pytest.mark.parametrize(("length", "code"), LENGTHS, ids=LENGTH_IDS)
def test_bad_header_length_is_fatal_on_the_fourth_byte(server, length, code) -> None:
    with raw_wire(server) as wire:
        wire.send_raw(struct.pack("<i", length))  # nothing more: the error must come anyway
        error = wire.expect_error_then_eof(code, timeout=2.0, eof_within=1.0)
        assert error.id is None
    assert_still_serving(server)


@pytest.mark.parametrize(("length", "code"), LENGTHS, ids=LENGTH_IDS)
def test_bad_header_length_after_auth(server, wires, length, code) -> None:
    wire = wires(server)
    wire.send_raw(struct.pack("<i", length))
    wire.expect_error_then_eof(code)
    assert_still_serving(server)


def test_bad_length_split_over_four_writes_is_caught_on_the_fourth_byte(server) -> None:
    with raw_wire(server) as wire:
        for byte in struct.pack("<i", -1)[:3]:
            wire.send_raw(bytes([byte]))
        with pytest.raises(TimeoutError):
            wire.next_event(0.3)  # three bytes prove nothing yet
        wire.send_raw(struct.pack("<i", -1)[3:])
        wire.expect_error_then_eof("frame.bad_length")


def test_pre_auth_header_cap_is_4_kib(server) -> None:
    with raw_wire(server) as wire:
        wire.send_raw(struct.pack("<i", 4097))
        wire.expect_error_then_eof("frame.too_large")
    assert_still_serving(server)


def test_pre_auth_header_of_exactly_4_kib_is_accepted(server) -> None:
    """The positive twin: an auth header padded (JSON whitespace) to 4096 bytes."""
    import secrets

    from rexec.protocol import AuthOk, FrameDecoder, Transcript, encode_header

    with raw_wire(server) as wire:
        auth = wire.conn.sign_auth(server.key, nonce=secrets.token_hex(32), binding=wire.binding)
        header = encode_header(auth)[4:]
        header = header[:-1] + b" " * (4096 - len(header)) + b"}"
        assert len(header) == 4096
        # The mac covers the header as it travels: sign the padded one.
        head = struct.pack("<i", len(header)) + header
        transcript = Transcript(wire.conn.hello_frame, head, wire.binding)
        mac = transcript.client_mac(server.key)
        wire.send_raw(head + mac)
        # The client core did not see this auth go out; decode auth_ok raw.
        decoder = FrameDecoder(max_header=4096, max_body=64)
        wire.sock.settimeout(5)
        while (reply := decoder.next_message()) is None:
            data = wire.sock.recv(4096)
            assert data, "the server closed instead of answering"
            decoder.feed(data)
        assert isinstance(reply, AuthOk), reply
        assert reply.mac == transcript.server_mac(server.key, mac)


def test_post_auth_header_cap_is_64_kib(server, wires) -> None:
    wire = wires(server)
    wire.send_raw(struct.pack("<i", 65537))
    wire.expect_error_then_eof("frame.too_large")


def test_post_auth_header_of_exactly_64_kib_is_accepted(server, wires) -> None:
    wire = wires(server)
    header = b'{"type":"ping","seq":5}'
    header = header[:-1] + b" " * (65536 - len(header)) + b"}"
    wire.send_raw(struct.pack("<i", len(header)) + header)
    pong = wire.next_event(5)
    assert pong.type == "pong" and pong.seq == 5


# --- other protocols on our port -------------------------------------------------------


TLS_CLIENT_HELLO_PREFIX = bytes.fromhex("1603010200010001fc0303" + "00" * 32 + "20" + "11" * 32)


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
        TLS_CLIENT_HELLO_PREFIX,
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ],
    ids=["http-get", "http-post", "tls-client-hello", "ssh-banner"],
)
def test_cross_protocol_bytes_are_refused_at_once(server, payload) -> None:
    with raw_wire(server) as wire:
        peer = f"127.0.0.1:{wire.sock.getsockname()[1]}"
        started = time.monotonic()
        wire.send_raw(payload)
        wire.expect_error_then_eof("frame.too_large", timeout=1.0, eof_within=1.0)
        assert time.monotonic() - started < 1.0
    assert_still_serving(server)
    records = [r for r in server.audit_records() if r.get("peer") == peer]
    # A TLS hello is named as such (rexec clients send one when the greeting
    # is late), not taken for a scanner's bad frame.
    tls = payload == TLS_CLIENT_HELLO_PREFIX
    expected = "tls_hello_on_plain_listener" if tls else "bad_frame"
    assert [r["event"] for r in records if r["event"] not in ("connect", "disconnect")] == [
        expected
    ], records


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xff\xff\xff" + b"junk" * 4, "frame.bad_length"),
        (b"\x00\x00\x00\x00junk", "frame.bad_length"),
        (struct.pack("<i", 5) + b"{abc}", "header.bad_json"),
    ],
    ids=["negative-length", "zero-length", "not-json"],
)
def test_any_protocol_error_before_authentication_is_recorded(server, payload, code) -> None:
    """retest6: junk that fails otherwise than by its size left only connect
    and disconnect in the audit log, nothing of what the prober sent."""
    with raw_wire(server) as wire:
        peer = f"127.0.0.1:{wire.sock.getsockname()[1]}"
        wire.send_raw(payload)
        wire.expect_error_then_eof(code, timeout=5.0, eof_within=5.0)
    deadline = time.monotonic() + 10  # the writer thread hands records over in batches
    while True:
        records = [
            r for r in server.audit_records() if r.get("peer") == peer and r["event"] == "bad_frame"
        ]
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(r["code"], bool(r["note"])) for r in records] == [(code, True)], records


def test_cross_protocol_bytes_before_reading_hello(server) -> None:
    """A client that does not wait for hello (as an HTTP client would)."""
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.send_raw(b"GET / HTTP/1.1\r\n\r\n")
        wire.read_hello(2)
        wire.expect_error_then_eof("frame.too_large")


# --- header content ------------------------------------------------------------------------


BAD_HEADERS_PRE_AUTH = [
    (b'\xff\xfe{"type":"auth"}', "header.bad_json"),  # invalid UTF-8
    (b'{"type":"auth","x":"\xc3\x28"}', "header.bad_json"),  # invalid UTF-8 inside a string
    (b'{"type":', "header.bad_json"),  # truncated JSON
    (b"not json at all", "header.bad_json"),
    (b"[1,2,3]", "header.not_object"),
    (b'"auth"', "header.not_object"),
    (b"42", "header.not_object"),
    (b"null", "header.not_object"),
    (b"{}", "header.unknown_type"),
    (b'{"type":"bogus"}', "header.unknown_type"),
    (b'{"type":"__class__"}', "header.unknown_type"),
    (b'{"type":7}', "header.unknown_type"),
]


@pytest.mark.parametrize(
    ("header", "code"),
    BAD_HEADERS_PRE_AUTH,
    ids=[f"{i}-{c}" for i, (_, c) in enumerate(BAD_HEADERS_PRE_AUTH)],
)
def test_bad_header_before_auth(server, header, code) -> None:
    with raw_wire(server) as wire:
        wire.send_raw(raw_frame(header))
        error = wire.expect_error_then_eof(code)
        # [error.message.no_echo]: the message does not quote our input.
        assert "bogus" not in error.message and "__class__" not in error.message
    assert_still_serving(server)


def test_extra_field_in_auth_is_invalid(server) -> None:
    # auth is closed ([message.extensible]): a member it does not define is fatal.
    with raw_wire(server) as wire:
        wire.send_raw(
            raw_frame(
                {"type": "auth", "data_size": 32, "version": 3, "nonce": "a" * 64, "extra": 1},
                bytes(32),
            )
        )
        wire.expect_error_then_eof("header.invalid")
    assert_still_serving(server)


POST_AUTH_INVALID = [
    ({"type": "ping", "seq": 1, "extra": True}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": ["echo", "a\u0000b"]}, "header.invalid"),
    ({"type": "run", "id": 1, "shell": "echo a\u0000b"}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": ["echo"], "env": {"A": "x\u0000"}}, "header.invalid"),
    ({"type": "run", "id": "1", "argv": ["echo"]}, "header.invalid"),
    ({"type": "run", "id": 1.0, "argv": ["echo"]}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": ["echo"], "stdin": 1}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": ["echo"], "shell": "echo"}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": []}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": [""]}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": ["echo"], "env": []}, "header.invalid"),
    # pty.term becomes TERM: a terminal type, never a path or shell text.
    (
        {"type": "run", "id": 1, "argv": ["echo"], "pty": {"term": "/work/x;$(id)"}},
        "header.invalid",
    ),
    ({"type": "run", "id": 1, "argv": ["echo"], "pty": {"term": "xterm 256"}}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": ["echo"], "pty": {"term": "x" * 65}}, "header.invalid"),
    ({"type": "run", "id": 1, "argv": ["echo"], "pty": {"term": "vt100\u00e9"}}, "header.invalid"),
    ({"type": "run", "id": -1, "argv": ["echo"]}, "header.invalid"),
    ({"type": "run", "id": 2**53, "argv": ["echo"]}, "header.invalid"),
    ({"type": "signal", "id": 1, "signal": "SIGSEGV"}, "header.invalid"),
    ({"type": "ping"}, "header.invalid"),
]


@pytest.mark.parametrize(
    ("header", "code"), POST_AUTH_INVALID, ids=[f"{i}" for i in range(len(POST_AUTH_INVALID))]
)
def test_invalid_header_after_auth_is_fatal_and_runs_nothing(
    server, wires, header, code, tmp_path
) -> None:
    wire = wires(server)
    wire.send_raw(raw_frame(header))
    wire.expect_error_then_eof(code)
    assert not [r for r in server.audit_records() if r["event"] == "exec"]
    assert_still_serving(server)


def test_nan_timeout_is_refused(server, wires) -> None:
    """NaN is not JSON (RFC 8259) and not a finite number: either code names
    the fault; the connection closes and nothing runs."""
    wire = wires(server)
    wire.send_raw(raw_frame(b'{"type":"run","id":1,"argv":["true"],"timeout":NaN}'))
    message = wire.next_event(2)
    assert message.type == "error" and message.fatal
    assert message.code in ("header.bad_json", "header.invalid")
    wire.expect_eof(1.0)
    assert not [r for r in server.audit_records() if r["event"] == "exec"]


def test_data_size_on_ping_is_invalid(server, wires) -> None:
    wire = wires(server)
    wire.send_raw(raw_frame({"type": "ping", "seq": 1, "data_size": 5}, b"hello"))
    wire.expect_error_then_eof("header.invalid")
    assert_still_serving(server)


def test_body_above_the_limit_is_refused_before_the_body(server, wires) -> None:
    wire = wires(server)
    command_id = wire.run(["sleep", "5"], stdin=True)
    wire.wait_for(lambda: wire.results[command_id].started is not None, 5)
    # Only the header: the error must come without the 1 MiB + 1 body.
    wire.send_raw(raw_frame({"type": "stdin", "id": command_id, "data_size": 1024 * 1024 + 1}))
    wire.expect_error_then_eof("frame.body_too_large")


# --- truncated frames -------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 3, 4, 10, 30], ids=lambda c: f"cut-at-{c}")
def test_truncated_frame_then_close_leaves_server_healthy(server, cut) -> None:
    frame = raw_frame({"type": "auth", "version": 1, "nonce": "a" * 64, "mac": "b" * 64})
    with raw_wire(server) as wire:
        wire.send_raw(frame[:cut])
        wire.sock.shutdown(socket.SHUT_WR)
        # The server closes its side too (a departure), without a message.
        wire.expect_eof(2.0)
    assert_still_serving(server)


def test_truncated_body_after_auth_then_close(server, wires, marker) -> None:
    m = marker()
    wire = wires(server)
    command_id = wire.run(["sleep", m], stdin=True)
    wire.wait_for(lambda: wire.results[command_id].started is not None, 5)
    wire.send_raw(raw_frame({"type": "stdin", "id": command_id, "data_size": 100}, b"x" * 10))
    wire.sock.shutdown(socket.SHUT_WR)
    # [frame.eof.truncated]: a stream that ends inside a frame is the client's
    # departure, not a half-close, so [disconnect.kill] applies.
    assert wait_gone(m, 2.0 + 1.0) == [], "the command outlived a truncated frame + EOF"
    wire.close()
    assert_still_serving(server)


def test_many_frames_in_one_segment_and_byte_by_byte(server, wires) -> None:
    """[frame.stream.chunking] against the server: 20 pings in one write, then
    one ping a byte at a time."""
    from rexec.protocol import Ping, encode_frame

    wire = wires(server)
    wire.send_raw(b"".join(encode_frame(Ping(seq=i)) for i in range(20)))
    assert [wire.next_event(5).seq for _ in range(20)] == list(range(20))
    for byte in encode_frame(Ping(seq=99)):
        wire.send_raw(bytes([byte]))
        time.sleep(0.001)
    assert wire.next_event(5).seq == 99


def test_ping_before_auth_is_unexpected(server) -> None:
    with raw_wire(server) as wire:
        wire.send_raw(raw_frame({"type": "ping", "seq": 1}))
        wire.expect_error_then_eof("protocol.unexpected")
