"""Handshake proofs (protocol.md 3.1): known answers computed here with the
stdlib, independently of rexec.protocol._auth."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from rexec.protocol import KEY_SIZE, NONCE_SIZE, client_proof, proofs_match, server_proof

from .vectors import (
    HANDSHAKE_CLIENT_MAC,
    HANDSHAKE_CLIENT_NONCE,
    HANDSHAKE_KEY,
    HANDSHAKE_SERVER_MAC,
    HANDSHAKE_SERVER_NAME,
    HANDSHAKE_SERVER_NONCE,
)

ARGS = (HANDSHAKE_KEY, HANDSHAKE_SERVER_NONCE, HANDSHAKE_CLIENT_NONCE, HANDSHAKE_SERVER_NAME)


def reference_mac(role: str, key: bytes, server_nonce: str, client_nonce: str, server: str) -> str:
    """The formula of protocol.md 3.1, spelled out."""
    transcript = (
        f"rexec-auth-v1 {role}".encode("ascii")
        + b"\x00"
        + bytes.fromhex(server_nonce)
        + bytes.fromhex(client_nonce)
        + server.encode("utf-8")
    )
    return hmac.new(key, transcript, hashlib.sha256).hexdigest()


def test_example_key_and_nonces() -> None:
    assert HANDSHAKE_KEY == bytes.fromhex("".join(f"{i:02x}" for i in range(32)))
    assert len(HANDSHAKE_KEY) == KEY_SIZE
    assert bytes.fromhex(HANDSHAKE_SERVER_NONCE) == b"\xaa" * NONCE_SIZE
    assert bytes.fromhex(HANDSHAKE_CLIENT_NONCE) == b"\xbb" * NONCE_SIZE


def test_known_answers() -> None:
    # The vectors (and so protocol.md's example) hold the right macs...
    assert reference_mac("client", *ARGS) == HANDSHAKE_CLIENT_MAC
    assert reference_mac("server", *ARGS) == HANDSHAKE_SERVER_MAC
    # ...and the implementation computes the same.
    assert client_proof(*ARGS) == HANDSHAKE_CLIENT_MAC
    assert server_proof(*ARGS) == HANDSHAKE_SERVER_MAC


@pytest.mark.parametrize("server_name", ["", "example", "h\u00e9t\u00e9ro\u2603", "x" * 255])
def test_matches_reference_for_other_inputs(server_name: str) -> None:
    # The server name is UTF-8 encoded, not ASCII, not hex.
    key = bytes(range(100, 132))
    nonces = ("0f" * 32, "f0" * 32)
    for role, proof in (("client", client_proof), ("server", server_proof)):
        assert proof(key, *nonces, server_name) == reference_mac(role, key, *nonces, server_name)


def test_labels_differ_so_proofs_cannot_be_reflected() -> None:
    # A server echoing the client's mac in auth_ok must not pass as a proof.
    assert client_proof(*ARGS) != server_proof(*ARGS)
    assert not proofs_match(server_proof(*ARGS), client_proof(*ARGS))


def test_every_input_changes_the_proof() -> None:
    base = client_proof(*ARGS)
    assert client_proof(bytes(32), *ARGS[1:]) != base
    assert client_proof(ARGS[0], "ab" * 32, *ARGS[2:]) != base
    assert client_proof(*ARGS[:2], "bc" * 32, ARGS[3]) != base
    assert client_proof(*ARGS[:3], "example2") != base
    # Swapping the nonces is a different transcript (no symmetric replay).
    assert client_proof(ARGS[0], ARGS[2], ARGS[1], ARGS[3]) != base


def test_proofs_match() -> None:
    mac = client_proof(*ARGS)
    assert proofs_match(mac, mac)
    assert proofs_match(mac, str(mac))
    assert not proofs_match(mac, mac[:-1] + ("0" if mac[-1] != "0" else "1"))
    assert not proofs_match(mac, mac.upper())
    assert not proofs_match(mac, "")
    assert not proofs_match(mac, mac + "0")


def test_proofs_match_takes_non_ascii_without_raising() -> None:
    # hmac.compare_digest raises TypeError on non-ASCII str; the helper
    # encodes first, so a hostile value is just a mismatch.
    assert not proofs_match(client_proof(*ARGS), "\u00e9" * 64)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_wrong_key_size_refused(size: int) -> None:
    with pytest.raises(ValueError):
        client_proof(bytes(size), *ARGS[1:])
    with pytest.raises(ValueError):
        server_proof(bytes(size), *ARGS[1:])
