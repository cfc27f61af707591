"""``rexecd --announce``: answer UDP discovery probes (rexec/protocol/_discovery.py).

The socket is bound to every IPv4 address on ``announce_port`` (a broadcast
probe reaches only sockets bound to the wildcard or to the broadcast address),
with SO_REUSEADDR so that several rexecd on one host can all answer a
broadcast; a server listening on one address binds that address too, so that
a probe sent to it reaches this server and no other. What is answered is
narrowed in this order, each check cheaper than the next step:

1. size: a datagram outside 256–512 bytes is dropped (no amplification);
2. source: only from ``announce_networks`` (default: loopback only);
3. format: magic, version, kind;
4. rate: a token bucket per source address and one for all sources together
   (spoofed sources spread over a network share the second);
5. state: nothing is answered while the server shuts down.

An answer leaves from the address the announcement names (``IP_PKTINFO``),
not from whichever one the kernel would pick for the prober: a client keeps
only answers whose ``host`` is empty or their own source (a peer that sees the
probe can then name only itself), so a server listening on one address must
answer from it.

Dropped probes are counted in ``rexecd_discovery_probes_total``, never logged:
a flood must not fill the disk.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import cast

from rexec.protocol import Announcement, decode_probe, encode_answer

#: Per source: a burst of 5 probes, then one every half second. A person
#: running ``rexec discover`` sends one probe per address per run.
SOURCE_RATE = 2.0
SOURCE_BURST = 5.0
#: All sources together: a bound on answers per second whatever the sources.
GLOBAL_RATE = 50.0
GLOBAL_BURST = 100.0
#: IP_PKTINFO, the ancillary data that picks a datagram's source address:
#: Python names it only from 3.13; 8 is Linux's value (rexecd runs on Linux).
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
#: Sources tracked at once; beyond it, idle buckets are forgotten, and if none
#: are idle the probe is dropped (a spoofing flood doesn't grow memory).
MAX_SOURCES = 4096


class TokenBuckets:
    """Token buckets per key plus one shared by all; the caller passes the time."""

    def __init__(
        self, rate: float = SOURCE_RATE, burst: float = SOURCE_BURST,
        global_rate: float = GLOBAL_RATE, global_burst: float = GLOBAL_BURST,
        max_keys: int = MAX_SOURCES,
    ) -> None:  # fmt: skip
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._global = [global_burst, 0.0]
        self._global_rate, self._global_burst = global_rate, global_burst
        self._buckets: dict[str, list[float]] = {}  # key → [tokens, last time]

    def allow(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_idle(now)
                if len(self._buckets) >= self.max_keys:
                    return False
            bucket = self._buckets[key] = [self.burst, now]
        bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        shared = self._global
        shared[0] = min(self._global_burst, shared[0] + (now - shared[1]) * self._global_rate)
        shared[1] = now
        if bucket[0] < 1.0 or shared[0] < 1.0:
            return False
        bucket[0] -= 1.0
        shared[0] -= 1.0
        return True

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key in [k for k, (_, last) in self._buckets.items() if now - last >= full_after]:
            del self._buckets[key]


class Announcer(asyncio.DatagramProtocol):
    """Answers probes with ``announcement()`` (None: answer nothing now)."""

    def __init__(
        self,
        announcement: Callable[[], Announcement | None],
        networks: Sequence[str],
        count: Callable[[str], None] = lambda result: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._announcement = announcement
        self._networks = [ipaddress.IPv4Network(network, strict=False) for network in networks]
        self._count = count
        self._clock = clock
        self._buckets = TokenBuckets()
        self.transport: asyncio.DatagramTransport | None = None
        #: The bound socket itself, for ``sendmsg`` (the transport has none).
        self.sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        nonce = decode_probe(data)
        source = str(addr[0])
        if nonce is None:
            self._count("malformed")
            return
        if not self._allowed_source(source):
            self._count("outside_networks")
            return
        if not self._buckets.allow(source, self._clock()):
            self._count("rate_limited")
            return
        announcement = self._announcement()
        answer = None if announcement is None else encode_answer(nonce, announcement, len(data))
        if answer is None or self.transport is None:
            self._count("not_answered")
            return
        self._send(answer, addr, announcement.host if announcement else "")
        self._count("answered")

    def _send(self, answer: bytes, addr: tuple[str | int, ...], host: str) -> None:
        """Send ``answer`` to ``addr`` from ``host`` when it names one address."""
        assert self.transport is not None
        if not host or self.sock is None:
            self.transport.sendto(answer, addr)
            return
        try:
            # struct in_pktinfo: interface 0 (any), the source to use, unused.
            pktinfo = struct.pack("=I4s4s", 0, socket.inet_aton(host), bytes(4))
            self.sock.sendmsg([answer], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, addr)
        except OSError:
            # Not an IPv4 address (no IPv4 client can use it), a full buffer,
            # an unroutable prober: a lost datagram, as UDP may lose one.
            pass

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier answer: the prober has gone

    def _allowed_source(self, source: str) -> bool:
        try:
            address = ipaddress.IPv4Address(source)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


async def start_announcer(
    port: int,
    announcement: Callable[[], Announcement | None],
    networks: Sequence[str],
    count: Callable[[str], None] = lambda result: None,
    unicast: str = "",
) -> tuple[list[asyncio.DatagramTransport], int]:
    """Bind ``0.0.0.0:port`` and answer probes; returns the transports and
    the bound port. With ``unicast`` (the one IPv4 address the server listens
    on), bind ``unicast:port`` as well: of the sockets sharing a port on one
    host, only the last bound to the wildcard gets a probe sent to one
    address, while the socket bound to that very address is preferred over
    it, so each server answers probes sent to its own address. Raises
    OSError."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.DatagramTransport] = []
    try:
        for address in ("0.0.0.0", *([unicast] if _is_ipv4(unicast) else [])):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            port = sock.getsockname()[1]  # port 0: the second binds the same one
            transport, announcer = await loop.create_datagram_endpoint(
                lambda: Announcer(announcement, networks, count), sock=sock
            )
            announcer.sock = sock
            transports.append(transport)
    except OSError:
        for transport in transports:
            transport.close()
        raise
    return transports, port


def _is_ipv4(host: str) -> bool:
    try:
        return not ipaddress.IPv4Address(host).is_unspecified
    except ValueError:
        return False
