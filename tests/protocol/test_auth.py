"""Handshake macs over the transcript (protocol.md 3.1): known answers computed
here with the stdlib, independently of rexec.protocol; every byte of the
transcript is covered; and the Connection records exactly the bytes that
travelled."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest

from rexec.protocol import (
    BINDING_SIZE,
    KEY_SIZE,
    NONCE_SIZE,
    Auth,
    Connection,
    Hello,
    Role,
    Transcript,
    encode_frame,
    endpoint_binding,
    macs_match,
    sign_auth,
)

from .helpers import deliver, receive_chunks
from .vectors import (
    AUTH,
    AUTH_HEADER,
    AUTH_OK,
    HANDSHAKE_BINDING,
    HANDSHAKE_CLIENT_ENDPOINT,
    HANDSHAKE_CLIENT_MAC,
    HANDSHAKE_CLIENT_MAC_TLS,
    HANDSHAKE_CLIENT_NONCE,
    HANDSHAKE_ENDPOINT_BINDING,
    HANDSHAKE_KEY,
    HANDSHAKE_SERVER_ENDPOINT,
    HANDSHAKE_SERVER_MAC,
    HANDSHAKE_SERVER_MAC_TLS,
    HANDSHAKE_SERVER_NONCE,
    HELLO,
)

TRANSCRIPT = Transcript(HELLO.wire, AUTH_HEADER, HANDSHAKE_ENDPOINT_BINDING)
TLS_TRANSCRIPT = Transcript(HELLO.wire, AUTH_HEADER, HANDSHAKE_BINDING)


def reference_mac(label: str, key: bytes, *pieces: bytes) -> bytes:
    """The formula of protocol.md 3.1, spelled out: each piece preceded by its
    length as 4 bytes little-endian."""
    data = b"".join(
        struct.pack("<I", len(piece)) + piece for piece in (label.encode("ascii"), *pieces)
    )
    return hmac.new(key, data, hashlib.sha256).digest()


def test_example_key_and_nonces() -> None:
    assert HANDSHAKE_KEY == bytes.fromhex("".join(f"{i:02x}" for i in range(32)))
    assert len(HANDSHAKE_KEY) == KEY_SIZE
    assert bytes.fromhex(HANDSHAKE_SERVER_NONCE) == b"\xaa" * NONCE_SIZE
    assert bytes.fromhex(HANDSHAKE_CLIENT_NONCE) == b"\xbb" * NONCE_SIZE
    assert len(HANDSHAKE_BINDING) == BINDING_SIZE


@pytest.mark.parametrize(
    ("transcript", "binding", "client_mac", "server_mac"),
    [
        (TRANSCRIPT, HANDSHAKE_ENDPOINT_BINDING, HANDSHAKE_CLIENT_MAC, HANDSHAKE_SERVER_MAC),
        (TLS_TRANSCRIPT, HANDSHAKE_BINDING, HANDSHAKE_CLIENT_MAC_TLS, HANDSHAKE_SERVER_MAC_TLS),
    ],
    ids=["plain", "tls"],
)
def test_known_answers(
    transcript: Transcript, binding: bytes, client_mac: bytes, server_mac: bytes
) -> None:
    pieces = (HELLO.wire, AUTH_HEADER, binding)
    # The vectors (and so protocol.md's example) hold the right macs...
    assert reference_mac("rexec v3 client mac", HANDSHAKE_KEY, *pieces) == client_mac
    assert reference_mac("rexec v3 server mac", HANDSHAKE_KEY, *pieces, client_mac) == server_mac
    # ...and the implementation computes the same.
    assert transcript.client_mac(HANDSHAKE_KEY) == client_mac
    assert transcript.server_mac(HANDSHAKE_KEY, client_mac) == server_mac


def test_the_endpoints_binding_is_the_formula_and_tells_a_relay_apart() -> None:
    # protocol.md 3.1: SHA-256 over the length-prefixed label, client address
    # and port, server address and port, as ASCII.
    pieces = (b"rexec v3 tcp endpoints", b"127.0.0.1", b"50000", b"127.0.0.1", b"7420")
    spelled = hashlib.sha256(b"".join(struct.pack("<I", len(p)) + p for p in pieces)).digest()
    assert spelled == HANDSHAKE_ENDPOINT_BINDING
    assert endpoint_binding(HANDSHAKE_CLIENT_ENDPOINT, HANDSHAKE_SERVER_ENDPOINT) == spelled
    assert len(spelled) == BINDING_SIZE
    # Each side's view of one connection agrees (a dual-stack server sees an
    # IPv4 peer as IPv4-mapped; an IPv6 address carries flow info and zone).
    mapped = (("::ffff:127.0.0.1", 50000, 0, 0), ("::ffff:127.0.0.1", 7420, 0, 0))
    assert endpoint_binding(*mapped) == spelled
    assert endpoint_binding(("fe80::1%eth0", 5, 0, 2), ("::1", 6)) == endpoint_binding(
        ("fe80:0::1", 5), ("0::1", 6)
    )
    # A relay: the client's connection ends at the relay's port, the
    # server's starts at the relay's own; both differ from the direct ones.
    assert endpoint_binding(("127.0.0.1", 50000), ("127.0.0.1", 7951)) != spelled
    assert endpoint_binding(("127.0.0.1", 50001), ("127.0.0.1", 7420)) != spelled
    # The two ends are not interchangeable.
    assert endpoint_binding(HANDSHAKE_SERVER_ENDPOINT, HANDSHAKE_CLIENT_ENDPOINT) != spelled
    with pytest.raises(ValueError):
        endpoint_binding(("localhost", 1), ("127.0.0.1", 2))


def test_the_vectors_carry_the_macs_in_their_bodies() -> None:
    assert AUTH.wire == AUTH_HEADER + HANDSHAKE_CLIENT_MAC
    assert AUTH_OK.wire.endswith(HANDSHAKE_SERVER_MAC)
    signed = sign_auth(
        HELLO.wire, HANDSHAKE_KEY, nonce=HANDSHAKE_CLIENT_NONCE, binding=HANDSHAKE_ENDPOINT_BINDING
    )
    assert signed == AUTH.message
    assert encode_frame(AUTH.message) == AUTH.wire


def test_labels_differ_so_macs_cannot_be_reflected() -> None:
    # A server echoing the client's mac in auth_ok must not pass as its proof.
    client_mac = TRANSCRIPT.client_mac(HANDSHAKE_KEY)
    assert not macs_match(TRANSCRIPT.server_mac(HANDSHAKE_KEY, client_mac), client_mac)


def _flipped(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("piece", ["hello", "auth"])
def test_every_byte_of_the_frames_is_covered(piece: str) -> None:
    # A man in the middle who changes any byte (a version, a limit, a length
    # prefix, a feature) changes both macs.
    base = TRANSCRIPT.client_mac(HANDSHAKE_KEY)
    data = HELLO.wire if piece == "hello" else AUTH_HEADER
    for index in range(len(data)):
        changed = _flipped(data, index)
        transcript = (
            Transcript(changed, AUTH_HEADER)
            if piece == "hello"
            else Transcript(HELLO.wire, changed)
        )
        assert transcript.client_mac(HANDSHAKE_KEY) != base, index
        assert transcript.server_mac(HANDSHAKE_KEY, base) != TRANSCRIPT.server_mac(
            HANDSHAKE_KEY, base
        ), index


def test_binding_key_and_client_mac_are_covered() -> None:
    base = TRANSCRIPT.client_mac(HANDSHAKE_KEY)
    assert TLS_TRANSCRIPT.client_mac(HANDSHAKE_KEY) != base
    assert Transcript(HELLO.wire, AUTH_HEADER, bytes(32)).client_mac(HANDSHAKE_KEY) != (
        TLS_TRANSCRIPT.client_mac(HANDSHAKE_KEY)
    )
    assert TRANSCRIPT.client_mac(bytes(32)) != base
    server = TRANSCRIPT.server_mac(HANDSHAKE_KEY, base)
    assert TRANSCRIPT.server_mac(HANDSHAKE_KEY, _flipped(base, 0)) != server


def test_length_prefixes_keep_pieces_apart() -> None:
    # Moving a byte from the end of hello to the start of auth keeps the
    # concatenation but not the transcript.
    moved = Transcript(HELLO.wire[:-1], HELLO.wire[-1:] + AUTH_HEADER)
    assert moved.client_mac(HANDSHAKE_KEY) != TRANSCRIPT.client_mac(HANDSHAKE_KEY)


def test_macs_match() -> None:
    mac = TRANSCRIPT.client_mac(HANDSHAKE_KEY)
    assert macs_match(mac, bytes(mac))
    assert not macs_match(mac, _flipped(mac, 31))
    assert not macs_match(mac, b"")
    assert not macs_match(mac, mac + b"\x00")


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_wrong_key_size_refused(size: int) -> None:
    with pytest.raises(ValueError):
        TRANSCRIPT.client_mac(bytes(size))
    with pytest.raises(ValueError):
        TRANSCRIPT.server_mac(bytes(size), HANDSHAKE_CLIENT_MAC)


@pytest.mark.parametrize("size", [1, 31, 33, 48])
def test_binding_is_32_bytes_or_none(size: int) -> None:
    with pytest.raises(ValueError):
        Transcript(HELLO.wire, AUTH_HEADER, bytes(size))


def test_connections_record_the_bytes_that_travelled() -> None:
    # The server writes its hello with spacing and member order of its own;
    # the client's transcript holds those bytes, not a re-encoding.
    spelled = HELLO.wire[4:].replace(b'"data_size":0,', b"").replace(b",", b", ")
    hello_frame = struct.pack("<i", len(spelled)) + spelled
    client = Connection(Role.CLIENT)
    [hello] = receive_chunks(client, [hello_frame[:7], hello_frame[7:]])
    assert isinstance(hello, Hello)
    auth = client.sign_auth(HANDSHAKE_KEY, nonce=HANDSHAKE_CLIENT_NONCE)
    sent = client.send(auth)
    assert client.transcript() == Transcript(hello_frame, sent[:-32])
    server = Connection(Role.SERVER)
    server.send(HELLO.message)
    [received] = receive_chunks(server, [AUTH.wire])
    assert server.transcript(HANDSHAKE_BINDING) == TLS_TRANSCRIPT
    assert isinstance(received, Auth) and received.mac == HANDSHAKE_CLIENT_MAC


def test_signing_follows_the_hello_received() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    deliver(server, client, HELLO.message)
    auth = client.sign_auth(HANDSHAKE_KEY, nonce=HANDSHAKE_CLIENT_NONCE, binding=HANDSHAKE_BINDING)
    assert auth.mac == HANDSHAKE_CLIENT_MAC_TLS and auth.version == 3
