"""Find rexecd servers that answer UDP discovery probes (``rexecd --announce``).

    >>> from rexec_client.discovery import discover
    >>> for server in discover(timeout=1.0):
    ...     print(server.address, server.name, server.tls)

One probe goes to each address (by default this host's loopback, the
broadcast address of every IPv4 interface that has one, and 255.255.255.255);
answers are collected until the timeout. An answer counts only if it is
well-formed and echoes the nonce of our probe (rexec/protocol/_discovery.py), so
garbage and answers forged without seeing the probe are ignored. Whoever does
see the probe (a peer on the LAN) can answer it, so an answer may name only
its own sender (``host`` empty or its source address: never steer a batch
to another machine), one sender counts for ``MAX_PER_SENDER`` servers at most,
and all senders for ``MAX_SERVERS``; what is ignored is counted, by reason.
Discovery is a convenience, not an
authority: a server found this way still has to prove the shared key when you
connect, as every server does.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import os
import secrets
import select
import socket
import struct
import sys
import time
from collections.abc import Iterable
from typing import Any

from rexec.protocol import (
    DEFAULT_ANNOUNCE_PORT,
    MAX_PROBE_SIZE,
    Announcement,
    decode_answer,
    encode_probe,
)

from .address import Address
from .errors import RexecError

__all__ = [
    "DEFAULT_ANNOUNCE_PORT",
    "DEFAULT_TIMEOUT",
    "DiscoveredServer",
    "DiscoveryError",
    "default_probe_addresses",
    "discover",
    "discover_addresses",
    "discover_spec",
    "ignored_lines",
]

#: Seconds to collect answers: a LAN answers in milliseconds; a second leaves
#: room for a busy host without making ``rexec discover`` feel slow.
DEFAULT_TIMEOUT = 1.0
#: Servers kept at most, from all senders: a flood of (valid) answers from
#: many senders can't grow memory or a batch's target list without bound.
MAX_SERVERS = 1024
#: Servers one sender (source address) may announce: several rexecd on one
#: host, each on its own port, but not a flood of made-up ones.
MAX_PER_SENDER = 16
#: Why an answer that echoed the nonce was not kept (the keys of ``ignored``).
ELSEWHERE = "named an address other than its sender's"
TOO_MANY = f"came from a sender that had announced {MAX_PER_SENDER} servers already"
MALFORMED = "were malformed or did not echo our probe"
OVER_CAP = "came after the most servers discovery keeps had been found"

_SIOCGIFFLAGS = 0x8913
_SIOCGIFBRDADDR = 0x8919
_IFF_UP = 0x1
_IFF_BROADCAST = 0x2


class DiscoveryError(RexecError, ValueError):
    """No probe could be sent (no usable address or network), or a bad
    ``@discover`` spec; a ValueError too, so that argument parsing that
    reports ValueErrors as usage errors reports this one."""


@dataclasses.dataclass(frozen=True)
class DiscoveredServer:
    """A server that answered, and the address to reach it at."""

    announcement: Announcement
    responder: str  # the source address of the answer

    @property
    def address(self) -> Address:
        return Address(self.announcement.host or self.responder, self.announcement.port)

    @property
    def name(self) -> str:
        return self.announcement.name

    @property
    def tls(self) -> bool:
        return self.announcement.tls

    def to_json(self) -> dict[str, Any]:
        a = self.announcement
        return {
            "address": str(self.address), "host": self.address.host, "port": a.port,
            "name": a.name, "protocol": list(a.protocol), "tls": a.tls,
            "client_cert": a.client_cert, "responder": self.responder,
        }  # fmt: skip


def default_probe_addresses() -> list[str]:
    """127.0.0.1 and loopback's broadcast 127.255.255.255 (the loopback
    interface has no broadcast address of its own, and servers on one host
    share the announce port: a probe to one address reaches one of them),
    each up IPv4 interface's broadcast address, 255.255.255.255."""
    addresses = ["127.0.0.1", "127.255.255.255", *_interface_broadcasts(), "255.255.255.255"]
    return list(dict.fromkeys(addresses))


def _interface_broadcasts() -> list[str]:
    try:
        import fcntl
    except ImportError:  # not a Unix: the limited broadcast will have to do
        return []
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack_from("H", fcntl.ioctl(sock, _SIOCGIFFLAGS, request), 16)[0]
                if flags & _IFF_UP and flags & _IFF_BROADCAST:
                    reply = fcntl.ioctl(sock, _SIOCGIFBRDADDR, request)
                    found.append(socket.inet_ntoa(reply[20:24]))
            except OSError:
                continue  # no IPv4 address on it, or gone meanwhile
    return [address for address in found if address != "0.0.0.0"]


def discover(
    addresses: Iterable[str] | None = None,
    port: int = DEFAULT_ANNOUNCE_PORT,
    timeout: float = DEFAULT_TIMEOUT,
    ignored: collections.Counter[str] | None = None,
    max_servers: int = MAX_SERVERS,
) -> list[DiscoveredServer]:
    """Probe ``addresses`` (default: ``default_probe_addresses()``) on UDP
    ``port`` and return the servers that answered within ``timeout`` seconds,
    each once, sorted by address, ``max_servers`` at most. Answers not kept
    are counted in ``ignored`` by reason (``MALFORMED``, ``ELSEWHERE``,
    ``TOO_MANY``, ``OVER_CAP``; see ``ignored_lines``).

    Raises:
        DiscoveryError: a bad address, or no probe could be sent at all.
    """
    targets = list(addresses) if addresses is not None else default_probe_addresses()
    for target in targets:
        try:
            ipaddress.IPv4Address(target)
        except ValueError:
            raise DiscoveryError(f"discovery needs IPv4 addresses, not {target!r}") from None
    nonce = secrets.token_bytes(16)
    probe = encode_probe(nonce)
    found: dict[tuple[str, int], DiscoveredServer] = {}
    per_sender: collections.Counter[str] = collections.Counter()
    ignored = collections.Counter() if ignored is None else ignored
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setblocking(False)
        errors = []
        for target in targets:
            try:
                sock.sendto(probe, (target, port))
            except OSError as exc:
                errors.append(f"{target}: {exc.strerror or exc}")
        if len(errors) == len(targets):
            raise DiscoveryError(
                "cannot send a discovery probe: " + "; ".join(errors or ["no address"])
            )
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            try:
                data, source = sock.recvfrom(MAX_PROBE_SIZE + 1)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                continue  # an ICMP error for one of the probes: that address is silent
            announcement = decode_answer(data, nonce)
            if announcement is None:
                ignored[MALFORMED] += 1
                continue
            server = DiscoveredServer(announcement, source[0])
            key = (server.address.host, server.address.port)
            if key in found:
                continue  # the same server again (it got two of our probes)
            if announcement.host not in ("", server.responder):
                ignored[ELSEWHERE] += 1
            elif per_sender[server.responder] >= MAX_PER_SENDER:
                ignored[TOO_MANY] += 1
            elif len(found) >= max_servers:
                ignored[OVER_CAP] += 1  # read on until the timeout, to say how many
            else:
                per_sender[server.responder] += 1
                found[key] = server
    return sorted(found.values(), key=_sort_key)


def ignored_lines(ignored: collections.Counter[str]) -> list[str]:
    """One ``rexec:`` line per reason ``discover`` ignored answers for, to print
    on stderr (the cap's line names it)."""
    lines = []
    for why, count in ignored.items():
        cap = f" ({MAX_SERVERS}; only these are listed)" if why == OVER_CAP else ""
        lines.append(f"rexec: ignored {count} answer(s) that {why}{cap}")
    return lines


def _sort_key(server: DiscoveredServer) -> tuple[int, int, str]:
    host = server.address.host
    try:
        number = int(ipaddress.ip_address(host))
    except ValueError:
        number = 0
    return number, server.address.port, host


def discover_addresses(
    addresses: Iterable[str] | None = None,
    port: int = DEFAULT_ANNOUNCE_PORT,
    timeout: float = DEFAULT_TIMEOUT,
    ignored: collections.Counter[str] | None = None,
) -> list[Address]:
    """The rexec addresses of the servers ``discover`` finds (for ``rexec
    batch --hosts @discover``); ``ignored`` as for ``discover``."""
    return [server.address for server in discover(addresses, port, timeout, ignored)]


#: The ``--hosts`` spec of ``rexec batch`` that stands for the servers found.
DISCOVER_SPEC = "@discover"


#: Where ``@discover`` sends its probes when set (comma-separated addresses),
#: instead of the default ones: to keep discovery on one network.
ADDRESSES_VARIABLE = "REXEC_DISCOVER_ADDRESSES"


def discover_spec(
    spec: str, timeout: float = DEFAULT_TIMEOUT, addresses: Iterable[str] | None = None
) -> list[Address] | None:
    """What a target spec means if it is ``@discover`` (probe the default
    addresses on the default port) or ``@discover:PORT`` (another announce
    port): the addresses found, in order. None for any other spec. Answers
    ignored are said on stderr, one ``rexec:`` line per reason, as ``rexec
    discover`` says them: a batch's target list is not trimmed silently.

    Raises:
        DiscoveryError: a bad port, no probe could be sent, or no server answered.
    """
    if spec != DISCOVER_SPEC and not spec.startswith(DISCOVER_SPEC + ":"):
        return None
    port = DEFAULT_ANNOUNCE_PORT
    if spec != DISCOVER_SPEC:
        port_text = spec[len(DISCOVER_SPEC) + 1 :]
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise DiscoveryError(f"bad spec {spec!r}: expected @discover or @discover:PORT")
        port = int(port_text)
    if addresses is None and os.environ.get(ADDRESSES_VARIABLE):
        addresses = os.environ[ADDRESSES_VARIABLE].split(",")
    ignored: collections.Counter[str] = collections.Counter()
    found = discover_addresses(addresses, port=port, timeout=timeout, ignored=ignored)
    for line in ignored_lines(ignored):
        print(line, file=sys.stderr)
    if not found:
        raise DiscoveryError(f"{spec}: no server answered the discovery probe on UDP port {port}")
    return found
