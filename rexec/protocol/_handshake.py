"""The handshake's proofs: HMAC-SHA256 over the whole transcript, on a shared key.

Each side proves it holds the 32-byte key by a mac over the handshake exactly
as it travelled: the ``hello`` frame and the ``auth`` frame without its body
(which is the client's mac), byte for byte, and the binding of the connection:
under TLS its channel binding (RFC 9266 ``tls-exporter``), without TLS its two
TCP endpoints as each side sees them (``endpoint_binding``). A man in the
middle who changes one byte of either frame (a version, a limit, a feature),
who terminates TLS and opens a session of his own to the server, or who
relays a plaintext connection byte for byte (another local user's port that
a client was sent to), makes the macs disagree. The server's mac covers the
client's as well. Every piece is length-prefixed, so no two different
transcripts feed the same bytes to HMAC.

Labels differ per role, so a proof can't be reflected back; both nonces are in
the frames and fresh, so a recorded transcript can't be replayed; the key
itself never travels. This module (with ``sign_auth`` in _handshake_steps.py,
which needs the message models) is the one implementation, used by the server,
the client, the conformance suite and the tests. It imports no pydantic, so
that what only needs the key size stays cheap to import. Nonces and the
binding come from the caller (this package does no I/O and draws no
randomness).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import struct
from collections.abc import Sequence

#: The protocol versions this implementation speaks (protocol.md 3).
SUPPORTED_VERSIONS = (3,)
#: The version this document describes.
PROTOCOL_VERSION = 3
#: The features this implementation knows (protocol.md 3.2): none yet.
SUPPORTED_FEATURES: frozenset[str] = frozenset()

KEY_SIZE = 32
NONCE_SIZE = 32
#: The size of a mac, carried as the body of ``auth`` and ``auth_ok``.
MAC_SIZE = 32
#: The size of a connection's binding: the RFC 9266 ``tls-exporter`` value
#: (label ``EXPORTER-Channel-Binding``, empty context), or a SHA-256.
BINDING_SIZE = 32

CLIENT_LABEL = b"rexec v3 client mac"
SERVER_LABEL = b"rexec v3 server mac"
ENDPOINTS_LABEL = b"rexec v3 tcp endpoints"

_PIECE_LENGTH = struct.Struct("<I")


def _mac(key: bytes, *pieces: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError(f"keys are {KEY_SIZE} bytes")
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for piece in pieces:
        mac.update(_PIECE_LENGTH.pack(len(piece)))
        mac.update(piece)
    return mac.digest()


def endpoint_binding(client: Sequence[object], server: Sequence[object]) -> bytes:
    """The binding of a connection without TLS: SHA-256(P(ENDPOINTS_LABEL) ‖
    P(client address) ‖ P(client port) ‖ P(server address) ‖ P(server port)),
    each address in its standard text form (an IPv4-mapped IPv6 address as
    the IPv4 one, no zone) and each port in decimal, both as ASCII.

    ``client`` and ``server`` are socket addresses as Python gives them
    (``getsockname()``, ``getpeername()``): (host, port, ...). The client
    passes its own socket's name and its peer's, the server its peer's and
    its own, so the two agree only on one TCP connection from end to end.

    Raises:
        ValueError: an address that is not an IP address.
    """
    digest = hashlib.sha256()
    for piece in (ENDPOINTS_LABEL, *_endpoint(client), *_endpoint(server)):
        digest.update(_PIECE_LENGTH.pack(len(piece)))
        digest.update(piece)
    return digest.digest()


def _endpoint(address: Sequence[object]) -> tuple[bytes, bytes]:
    # Here, not at the top: what only needs the key size stays cheap to import.
    import ipaddress

    host, port = str(address[0]), int(str(address[1]))
    ip = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip).encode(), str(port).encode()


@dataclasses.dataclass(frozen=True)
class Transcript:
    """The handshake as it travelled, which both macs cover.

    Attributes:
        hello: the whole ``hello`` frame (length prefix and header).
        auth: the ``auth`` frame's length prefix and header, without its body.
        binding: the connection's binding (``BINDING_SIZE`` bytes): its TLS
            channel binding, else ``endpoint_binding``; b"" only in tests of
            the mac itself.
    """

    hello: bytes
    auth: bytes
    binding: bytes = b""

    def __post_init__(self) -> None:
        if len(self.binding) not in (0, BINDING_SIZE):
            raise ValueError(f"a channel binding is {BINDING_SIZE} bytes, or none")

    def client_mac(self, key: bytes) -> bytes:
        """HMAC-SHA256(key, P(CLIENT_LABEL) ‖ P(hello) ‖ P(auth) ‖ P(binding)),
        where P(x) is x's length as 4 bytes little-endian, then x."""
        return _mac(key, CLIENT_LABEL, self.hello, self.auth, self.binding)

    def server_mac(self, key: bytes, client_mac: bytes) -> bytes:
        """HMAC-SHA256(key, P(SERVER_LABEL) ‖ P(hello) ‖ P(auth) ‖ P(binding)
        ‖ P(client_mac))."""
        return _mac(key, SERVER_LABEL, self.hello, self.auth, self.binding, client_mac)


def macs_match(expected: bytes, received: bytes) -> bool:
    """Compare two macs in constant time."""
    return hmac.compare_digest(expected, received)


def choose_version(offered: Sequence[int]) -> int | None:
    """The highest version both ``offered`` (a hello's) and we speak, if any."""
    common = set(offered) & set(SUPPORTED_VERSIONS)
    return max(common) if common else None


__all__ = [
    "BINDING_SIZE",
    "KEY_SIZE",
    "MAC_SIZE",
    "NONCE_SIZE",
    "PROTOCOL_VERSION",
    "SUPPORTED_FEATURES",
    "SUPPORTED_VERSIONS",
    "Transcript",
    "endpoint_binding",
    "choose_version",
    "macs_match",
]
