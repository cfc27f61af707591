"""The bytes of UDP discovery (``rexecd --announce``, ``rexec discover``), sans I/O.

A probe is::

    b"RXDP" | version (1 byte, 1) | kind (1 byte, 1 = probe) | 2 zero bytes
    | nonce (16 random bytes) | padding to at least MIN_PROBE_SIZE bytes

An answer is::

    b"RXDP" | version | kind (2 = answer) | body length (2 bytes, big-endian)
    | the probe's nonce | body: a UTF-8 JSON object

with ``name`` (the server's name, as in its ``hello``), ``host`` (the address
its rexec port listens on; empty when it listens on every address, so the
answer's source address is the one to use), ``port``, ``protocol`` (the
protocol versions it speaks) and ``tls`` / ``client_cert`` (whether it needs
TLS and a client certificate). Never a key, a command, or anything secret:
whoever can send a probe learns what a port scan would tell them.

No amplification: a probe must be padded to ``MIN_PROBE_SIZE`` and the answer
is never longer than the probe it answers (the name is shortened to fit, and a
probe too short for the rest gets no answer), so a spoofed probe can't make a
server send more bytes to a victim than the spoofer sent. The nonce ties an
answer to its probe: an answer that does not echo it is ignored, so an off-path
sender can't plant servers in the list.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import struct
from typing import Any

MAGIC = b"RXDP"
VERSION = 1
KIND_PROBE = 1
KIND_ANSWER = 2
NONCE_SIZE = 16
_PREFIX = struct.Struct(">4sBBH")  # magic, version, kind, reserved / body length
HEADER_SIZE = _PREFIX.size + NONCE_SIZE
#: The smallest probe answered: room for an answer with a name of a few dozen
#: characters, so that answering never amplifies.
MIN_PROBE_SIZE = 256
#: The largest probe answered (and what ``rexec discover`` sends): room for a
#: name of 255 bytes in the answer.
MAX_PROBE_SIZE = 512
#: The default UDP port of discovery: the rexec port plus one.
DEFAULT_ANNOUNCE_PORT = 7421


def encode_probe(nonce: bytes, size: int = MAX_PROBE_SIZE) -> bytes:
    if len(nonce) != NONCE_SIZE or not MIN_PROBE_SIZE <= size <= MAX_PROBE_SIZE:
        raise ValueError("a probe has a 16-byte nonce and 256 to 512 bytes")
    head = _PREFIX.pack(MAGIC, VERSION, KIND_PROBE, 0) + nonce
    return head + bytes(size - len(head))


def decode_probe(data: bytes) -> bytes | None:
    """The nonce of a well-formed probe of an answerable size, else None."""
    if not MIN_PROBE_SIZE <= len(data) <= MAX_PROBE_SIZE:
        return None
    magic, version, kind, _ = _PREFIX.unpack_from(data)
    if magic != MAGIC or version != VERSION or kind != KIND_PROBE:
        return None
    return data[_PREFIX.size : HEADER_SIZE]


@dataclasses.dataclass(frozen=True)
class Announcement:
    """What a server tells about itself."""

    name: str
    host: str  # "" when the listener is on every address
    port: int
    protocol: tuple[int, ...]
    tls: bool
    client_cert: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "host": self.host, "port": self.port,
            "protocol": list(self.protocol), "tls": self.tls, "client_cert": self.client_cert,
        }  # fmt: skip


def encode_answer(nonce: bytes, announcement: Announcement, limit: int) -> bytes | None:
    """The answer to a probe with ``nonce``, at most ``limit`` bytes (the
    probe's size); the name is shortened to fit. None if even that can't fit."""
    fields = announcement.to_json()
    name: str = fields["name"]
    while True:
        body = json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode()
        if HEADER_SIZE + len(body) <= limit:
            return _PREFIX.pack(MAGIC, VERSION, KIND_ANSWER, len(body)) + nonce + body
        if not name:
            return None
        overflow = HEADER_SIZE + len(body) - limit
        name = name[: max(0, len(name) - overflow)]
        fields["name"] = name


def decode_answer(data: bytes, nonce: bytes) -> Announcement | None:
    """The announcement in an answer to our probe ``nonce``, or None if the
    datagram is anything else: garbled, for another probe, or with fields of
    the wrong type or range. Nothing in a bad answer raises."""
    if len(data) < HEADER_SIZE or len(data) > MAX_PROBE_SIZE:
        return None
    magic, version, kind, length = _PREFIX.unpack_from(data)
    if magic != MAGIC or version != VERSION or kind != KIND_ANSWER:
        return None
    if data[_PREFIX.size : HEADER_SIZE] != nonce or len(data) != HEADER_SIZE + length:
        return None
    try:
        fields = json.loads(data[HEADER_SIZE:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(fields, dict):
        return None
    name, host, port = fields.get("name"), fields.get("host"), fields.get("port")
    protocol, tls = fields.get("protocol"), fields.get("tls")
    client_cert = fields.get("client_cert", False)
    if not (isinstance(name, str) and len(name) <= 255 and name.isprintable()):
        return None
    if not isinstance(host, str) or (host and not _is_ip(host)):
        return None
    if not (type(port) is int and 1 <= port <= 65535):
        return None
    if not (isinstance(protocol, list) and protocol and all(type(v) is int for v in protocol)):
        return None
    if type(tls) is not bool or type(client_cert) is not bool:
        return None
    return Announcement(name, host, port, tuple(protocol), tls, client_cert)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# NONCE_SIZE is this module's own (a probe's); the package's is the handshake's.
__all__ = [
    "DEFAULT_ANNOUNCE_PORT", "MAX_PROBE_SIZE", "Announcement", "decode_answer", "decode_probe",
    "encode_answer", "encode_probe",
]  # fmt: skip
