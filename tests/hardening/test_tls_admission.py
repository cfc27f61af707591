"""Connections still in the TLS handshake are admitted like any other
(attacker II, finding 1): they hold a slot of ``max_unauthenticated`` and give
way to newer ones, so a flood of half-finished handshakes, which needs neither
a certificate nor a key, can't take the daemon's memory and descriptors."""

from __future__ import annotations

import socket
import time

import pytest
from server.test_tls import client_context, pki, tls_flags  # noqa: F401  (pki: a fixture)
from server.wire import ServerClosed, Wire

from .conftest import Daemon, wait_until

#: The first bytes of a TLS ClientHello record (handshake, TLS 1.0 record
#: version, 512 bytes announced), then nothing more: a handshake left pending.
HALF_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)


@pytest.fixture
def tls_daemon(daemon, pki):  # noqa: F811
    def start(*args: str) -> Daemon:
        return daemon(*tls_flags(pki), *args)

    return start


def half_handshakes(server: Daemon, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(HALF_CLIENT_HELLO)
        socks.append(sock)
    return socks


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def served_over_tls(server: Daemon, pki) -> float:  # noqa: F811
    ca, client_cert, _ = pki
    start = time.monotonic()
    with Wire.open(
        server.host, server.port, key=server.key, ssl_context=client_context(ca, client_cert)
    ) as wire:
        wire.authenticate(timeout=5)
        result = wire.wait(wire.run(["true"]), 5)
    assert result.exit is not None and result.exit.exit_code == 0, result.frames
    return time.monotonic() - start


def test_pending_tls_handshakes_hold_slots_and_the_oldest_give_way(tls_daemon, pki) -> None:  # noqa: F811
    server = tls_daemon("--max-unauthenticated", "8")
    wait_until(lambda: server.events("listen"), 5)
    before = server.fds()
    socks = half_handshakes(server, 40)
    try:
        # The 32 oldest were displaced, within well under the handshake timeout (10 s).
        assert all(closed_by_server(sock, 3) for sock in socks[:32])
        assert wait_until(lambda: server.fds() <= before + 8 + 2, 5), server.fds() - before
        # The 8 newest still wait in their handshake.
        assert not any(closed_by_server(sock, 0.2) for sock in socks[32:])
        # A client with its certificate and key is served meanwhile (it
        # displaces one of the flood's connections).
        assert served_over_tls(server, pki) < 2.0
    finally:
        for sock in socks:
            sock.close()
    refused = server.events("refused_connection")
    assert len(refused) >= 32
    assert all("authenticating" in record["reason"] for record in refused)


def test_a_failed_tls_handshake_is_audited_and_frees_its_slot(tls_daemon, pki) -> None:  # noqa: F811
    import ssl

    ca, _, _ = pki
    server = tls_daemon("--max-unauthenticated", "2")
    for _ in range(5):  # no client certificate: the TLS handshake fails
        with (
            pytest.raises((ssl.SSLError, OSError, ServerClosed)),
            Wire.open(
                server.host, server.port, key=server.key, ssl_context=client_context(ca)
            ) as wire,
        ):
            wire.read_hello(3)
    # The five were seen and let go: each is a connect and a disconnect.
    assert wait_until(lambda: len(server.events("disconnect")) == 5, 5)
    assert len(server.events("connect")) == 5
    assert server.events("refused_connection") == []  # nobody had to be displaced
    assert served_over_tls(server, pki) < 2.0
