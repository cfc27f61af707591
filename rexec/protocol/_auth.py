"""Mutual HMAC-SHA256 challenge-response on a shared 32-byte key.

Each side proves it holds the key by a MAC over a label naming its role, both
nonces and the server's name. The labels differ, so a proof can't be reflected
back; both nonces are fresh, so a recorded transcript can't be replayed; the key
itself never travels. Nonces come from the caller (this package does no I/O,
and drawing randomness is the caller's job).
"""

from __future__ import annotations

import hashlib
import hmac

KEY_SIZE = 32
NONCE_SIZE = 32

_CLIENT_LABEL = b"rexec-auth-v1 client\x00"
_SERVER_LABEL = b"rexec-auth-v1 server\x00"


def _proof(label: bytes, key: bytes, server_nonce: str, client_nonce: str, server: str) -> str:
    if len(key) != KEY_SIZE:
        raise ValueError(f"keys are {KEY_SIZE} bytes")
    transcript = b"".join(
        (label, bytes.fromhex(server_nonce), bytes.fromhex(client_nonce), server.encode())
    )
    return hmac.new(key, transcript, hashlib.sha256).hexdigest()


def client_proof(key: bytes, server_nonce: str, client_nonce: str, server: str) -> str:
    """The ``mac`` a client puts in ``auth``: HMAC-SHA256(key, "rexec-auth-v1
    client" NUL ‖ server nonce ‖ client nonce ‖ server name), as lowercase hex."""
    return _proof(_CLIENT_LABEL, key, server_nonce, client_nonce, server)


def server_proof(key: bytes, server_nonce: str, client_nonce: str, server: str) -> str:
    """The ``mac`` a server puts in ``auth_ok``: as ``client_proof`` with the
    label "rexec-auth-v1 server"."""
    return _proof(_SERVER_LABEL, key, server_nonce, client_nonce, server)


def proofs_match(expected: str, received: str) -> bool:
    """Compare two proofs in constant time."""
    return hmac.compare_digest(expected.encode(), received.encode())
