"""Admission before the protocol: unauthenticated connections per source,
penalties after failed authentications, connections per source and overall.
A refused connection gets one fatal ``busy`` instead of ``hello``."""

from __future__ import annotations

import os
import socket
import time

from server.wire import Wire

from rexec.protocol import Error

from .conftest import Daemon, healthy, open_wire


def wire_from(server: Daemon, source: str, key: bytes | None = None) -> Wire:
    """A connection from a chosen loopback source address (127.0.0.x)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect((server.host, server.port))
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return Wire(sock, server_key=key or server.key)


def expect_refused(wire: Wire, within: float = 0.5) -> Error:
    start = time.monotonic()
    first = wire.next_event(within)
    assert isinstance(first, Error), f"expected busy instead of hello, got {first!r}"
    assert first.code == "busy" and first.fatal is True and first.id is None
    wire.expect_eof(1.0)
    assert time.monotonic() - start < within + 1.0
    return first


def test_unauthenticated_per_source(daemon) -> None:
    server = daemon("--max-unauthenticated-per-source", "2", "--auth-timeout", "5")
    authenticated = open_wire(server)  # before the idle ones: it holds no pre-auth slot
    idle = [open_wire(server, auth=False) for _ in range(2)]
    try:
        for wire in idle:
            wire.read_hello(2)
        with open_wire(server, auth=False) as third:
            error = expect_refused(third)
            assert "authenticating" in error.message
        # The authenticated client is unaffected.
        result = authenticated.wait(authenticated.run(["true"]), 5)
        assert result.exit.exit_code == 0
        # So is another source address.
        with wire_from(server, "127.0.0.2") as other:
            other.authenticate()
            assert other.wait(other.run(["true"]), 5).exit.exit_code == 0
        # Authenticating frees the slot.
        idle[0].authenticate()
        with open_wire(server) as fresh:
            assert fresh.wait(fresh.run(["true"]), 5).exit.exit_code == 0
    finally:
        authenticated.close()
        for wire in idle:
            wire.close()
    refusals = server.events("refused_connection")
    assert len(refusals) == 1 and refusals[0]["peer"].startswith("127.0.0.1:")


def test_unauthenticated_overall(daemon) -> None:
    server = daemon("--max-unauthenticated", "2", "--auth-timeout", "5")
    idle = [open_wire(server, auth=False) for _ in range(2)]
    try:
        for wire in idle:
            wire.read_hello(2)
        with wire_from(server, "127.0.0.3") as third:
            expect_refused(third)
    finally:
        for wire in idle:
            wire.close()
    time.sleep(0.1)
    assert healthy(server)


def test_auth_failure_penalty(daemon) -> None:
    server = daemon("--auth-failures", "2", "--auth-penalty", "1", "--auth-failure-window", "10")
    for _ in range(2):
        with open_wire(server, key=os.urandom(32), auth=False) as wire:
            wire.authenticate(expect_ok=False)
            wire.expect_error_then_eof("auth.failed")
    penalised_at = time.monotonic()
    # Refused at once, even with the right key: the connection gets no hello.
    with open_wire(server, auth=False) as wire:
        start = time.monotonic()
        error = expect_refused(wire)
        assert time.monotonic() - start < 0.2
        assert "failed authentications" in error.message
    # Another source is not penalised.
    with wire_from(server, "127.0.0.2") as other:
        other.authenticate()
        assert other.wait(other.run(["true"]), 5).exit.exit_code == 0
    # After the penalty, the source is let in again.
    time.sleep(max(0.0, penalised_at + 1.1 - time.monotonic()))
    assert healthy(server)


def test_failures_outside_the_window_do_not_add_up(daemon) -> None:
    server = daemon("--auth-failures", "2", "--auth-penalty", "5", "--auth-failure-window", "0.5")
    for _ in range(2):
        with open_wire(server, key=os.urandom(32), auth=False) as wire:
            wire.authenticate(expect_ok=False)
            wire.expect_error_then_eof("auth.failed")
        time.sleep(0.6)
    assert healthy(server)


def test_connections_per_source(daemon) -> None:
    server = daemon("--max-connections-per-source", "2")
    first, second = open_wire(server), open_wire(server)
    try:
        with open_wire(server, auth=False) as third:
            error = expect_refused(third)
            assert "from this address" in error.message
        with wire_from(server, "127.0.0.2") as other:
            other.authenticate()
            assert other.wait(other.run(["true"]), 5).exit.exit_code == 0
        for wire in (first, second):
            assert wire.wait(wire.run(["true"]), 5).exit.exit_code == 0
        first.close()
        # The slot is freed once the server has seen the close.
        deadline = time.monotonic() + 2
        while True:
            try:
                assert healthy(server)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        first.close()
        second.close()


def test_connections_overall(daemon) -> None:
    server = daemon("--max-connections", "3")
    held = [wire_from(server, f"127.0.0.{n}") for n in (1, 2, 3)]
    try:
        for wire in held:
            wire.authenticate()
        with wire_from(server, "127.0.0.4") as fourth:
            expect_refused(fourth)
        for wire in held:
            assert wire.wait(wire.run(["true"]), 5).exit.exit_code == 0
    finally:
        for wire in held:
            wire.close()


def test_refused_connections_do_not_leak(daemon) -> None:
    """500 refused connections leave the daemon's fds and memory as they were."""
    server = daemon("--max-connections-per-source", "1")
    holder = open_wire(server)
    try:
        time.sleep(0.1)
        fds, rss = server.fds(), server.rss()
        for _ in range(500):
            with open_wire(server, auth=False) as wire:
                first = wire.next_event(2)
                assert isinstance(first, Error) and first.code == "busy"
        time.sleep(0.3)
        assert abs(server.fds() - fds) <= 2
        assert server.rss() - rss < 4 * 2**20
        assert holder.wait(holder.run(["true"]), 5).exit.exit_code == 0
    finally:
        holder.close()


def test_failure_bookkeeping_is_bounded() -> None:
    """Addresses that fail once each (an IPv6 /64 is plenty) are forgotten
    once their window has passed, so the tables can't grow without bound."""
    from rexec.server.admission import Admission, AdmissionLimits

    admission = Admission(AdmissionLimits(10, 10, 10, 10, 3, 1.0, 1.0))
    for n in range(50_000):
        admission.failed(f"2001:db8::{n:x}", n * 0.001)  # 1,000 per simulated second
    assert len(admission._failures) + len(admission._penalised_until) < 10_000
    # A source still inside its window keeps counting.
    admission.failed("192.0.2.1", 100.0)
    admission.failed("192.0.2.1", 100.1)
    admission.failed("192.0.2.1", 100.2)
    assert admission.refusal("192.0.2.1", 100.3) is not None
    assert admission.refusal("192.0.2.1", 101.3) is None
