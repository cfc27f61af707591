"""The handshake against the real server: hello first, mutual HMAC proofs over
the whole transcript, nothing acted on before authentication, and the auth
deadline."""

from __future__ import annotations

import re
import secrets
import select
import time

import pytest

from rexec.protocol import PROTOCOL_VERSION, Auth, Run, encode_frame, sign_auth

from .wire import Wire, raw_frame, run_once


def test_hello_is_the_first_frame_with_nonce_versions_and_limits(server) -> None:
    with Wire.open(server.host, server.port) as wire:
        started = time.monotonic()
        hello = wire.read_hello(2)
        assert time.monotonic() - started < 1.0
        assert hello.versions == [PROTOCOL_VERSION]
        assert hello.features == []
        assert re.fullmatch(r"[0-9a-f]{64}", hello.nonce)
        assert 0 < len(hello.server) <= 255
        limits = hello.limits
        assert (limits.max_header, limits.max_body, limits.stdin_window, limits.max_commands) == (
            65536,
            1024 * 1024,
            256 * 1024,
            64,
        )


def test_max_commands_flag_is_announced(start_server) -> None:
    server = start_server("--max-commands", "3")
    with Wire.open(server.host, server.port) as wire:
        assert wire.read_hello(2).limits.max_commands == 3


def test_nonces_are_fresh_per_connection(server) -> None:
    nonces = set()
    for _ in range(5):
        with Wire.open(server.host, server.port) as wire:
            nonces.add(wire.read_hello(2).nonce)
    assert len(nonces) == 5


def test_auth_ok_carries_a_verifying_server_proof(server) -> None:
    with Wire.open(server.host, server.port, key=server.key) as wire:
        ok = wire.authenticate()  # asserts the proof verifies with our key
        assert ok is not None
        # Sanity: the proof is bound to the key, not just to the transcript.
        transcript = wire.conn.transcript(wire.binding)
        assert ok.mac != transcript.server_mac(bytes(32), transcript.client_mac(bytes(32)))


def test_wrong_mac_fails_runs_nothing_and_is_audited(server, tmp_path) -> None:
    marker_file = tmp_path / "ran"
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.read_hello(2)
        wrong_key = secrets.token_bytes(32)
        auth = wire.conn.sign_auth(wrong_key, nonce=secrets.token_hex(32), binding=wire.binding)
        auth = encode_frame(auth)
        run = encode_frame(Run(id=1, argv=["touch", str(marker_file)]))
        wire.send_raw(auth + run)  # pipelined in one segment
        error = wire.expect_error_then_eof("auth.failed")
        assert "key" not in error.message.lower() or "mac" not in error.message.lower()
    time.sleep(0.5)
    assert not marker_file.exists(), "a run pipelined after a failed auth was executed"
    records = server.audit_records()
    auth_records = [r for r in records if r["event"] == "auth"]
    assert auth_records and auth_records[-1]["ok"] is False
    assert not [r for r in records if r["event"] == "exec"]


@pytest.mark.parametrize("mac", [bytes(32), b"\xff" * 32])
def test_garbage_mac_fails(server, mac) -> None:
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate(mac=mac, expect_ok=False)
        wire.expect_error_then_eof("auth.failed")


def test_replayed_auth_fails(server) -> None:
    """An auth frame captured from one connection is refused on another (the
    server's nonce differs)."""
    with Wire.open(server.host, server.port, key=server.key) as first:
        first.read_hello(2)
        auth = first.conn.sign_auth(server.key, nonce=secrets.token_hex(32), binding=first.binding)
        captured = encode_frame(auth)
        first.send(auth)
        assert first.next_event(5).type == "auth_ok"
    with Wire.open(server.host, server.port, key=server.key) as second:
        second.read_hello(2)
        second.send_raw(captured)
        second.expect_error_then_eof("auth.failed")


def test_run_before_auth_is_unexpected_and_runs_nothing(server, tmp_path) -> None:
    marker_file = tmp_path / "ran"
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.read_hello(2)
        wire.send_raw(encode_frame(Run(id=1, argv=["touch", str(marker_file)])))
        wire.expect_error_then_eof("protocol.unexpected")
    time.sleep(0.3)
    assert not marker_file.exists()
    assert not [r for r in server.audit_records() if r["event"] == "exec"]


def test_run_before_reading_hello_is_unexpected(server, tmp_path) -> None:
    marker_file = tmp_path / "ran"
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.send_raw(encode_frame(Run(id=1, argv=["touch", str(marker_file)])))
        wire.read_hello(2)
        wire.expect_error_then_eof("protocol.unexpected")
    time.sleep(0.3)
    assert not marker_file.exists()


def test_second_auth_after_success_is_unexpected(server) -> None:
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate()
        wire.send_raw(
            encode_frame(Auth.unsigned(version=PROTOCOL_VERSION, nonce="a" * 64).signed(bytes(32)))
        )
        wire.expect_error_then_eof("protocol.unexpected")


def test_server_frames_from_the_client_are_unexpected(server) -> None:
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate()
        wire.send_raw(raw_frame({"type": "started", "id": 1, "pid": 5}))
        wire.expect_error_then_eof("protocol.unexpected")


@pytest.mark.parametrize("version", [1, 2, 4])
def test_auth_with_another_version_is_unsupported(server, version) -> None:
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate(version=version, expect_ok=False)
        wire.expect_error_then_eof("version.unsupported")


def test_version_1_client_gets_version_unsupported_not_a_hang(server) -> None:
    # A client of protocol version 1 answers hello with its own auth (mac in
    # the header, no body): a clear refusal, at once.
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.read_hello(2)
        started = time.monotonic()
        wire.send_raw(raw_frame({"type": "auth", "data_size": 0, "version": 1,
                                 "nonce": "b" * 64, "mac": "e" * 64}))  # fmt: skip
        wire.expect_error_then_eof("version.unsupported", timeout=3.0)
        assert time.monotonic() - started < 2.0


def test_feature_not_offered_is_refused(server) -> None:
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.read_hello(2)
        # Signed correctly; the client core itself would refuse to send it.
        auth = wire.conn.sign_auth(server.key, nonce="b" * 64, features=["x-never-offered"])
        wire.send_raw(encode_frame(auth))
        wire.expect_error_then_eof("feature.unsupported")


@pytest.mark.parametrize("change", ["max_body", "versions", "server"])
def test_mac_over_an_altered_hello_fails(server, change) -> None:
    """[auth.transcript]: a man in the middle rewrote hello (limits down to 1,
    another version list, another name) and the client computed its mac over
    what it saw: the server, whose transcript has the real hello, refuses."""
    with Wire.open(server.host, server.port, key=server.key) as wire:
        hello = wire.read_hello(2)
        altered = {
            "max_body": {"limits": hello.limits.model_copy(update={"max_body": 1})},
            "versions": {"versions": [3, 4]},
            "server": {"server": hello.server + "-evil"},
        }[change]
        seen = encode_frame(hello.model_copy(update=altered))
        auth = sign_auth(seen, server.key, nonce=secrets.token_hex(32), binding=wire.binding)
        wire.send_raw(encode_frame(auth))
        wire.expect_error_then_eof("auth.failed")


@pytest.mark.parametrize("binding", [b"\x5a" * 32, b""], ids=["other", "unbound"])
def test_mac_over_a_binding_the_server_does_not_have_fails(server, binding: bytes) -> None:
    """[auth.binding]: without TLS the binding is the connection's two ends;
    a mac over anything else (a TLS session's, or none, as version 2 had) is
    refused."""
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate(binding=binding, expect_ok=False)
        wire.expect_error_then_eof("auth.failed")


def test_server_proof_covers_the_client_mac(server) -> None:
    with Wire.open(server.host, server.port, key=server.key) as wire:
        ok = wire.authenticate()
        assert ok is not None
        transcript = wire.conn.transcript(wire.binding)
        assert ok.mac == transcript.server_mac(server.key, transcript.client_mac(server.key))
        assert ok.mac != transcript.server_mac(server.key, bytes(32))


def test_auth_deadline(start_server) -> None:
    server = start_server("--auth-timeout", "0.5")
    with Wire.open(server.host, server.port, key=server.key) as wire:
        opened = time.monotonic()
        wire.read_hello(2)
        error = wire.expect_error_then_eof("auth.timeout", timeout=3.0)
        elapsed = time.monotonic() - opened
        assert error.fatal
        assert 0.4 <= elapsed <= 1.5, elapsed
    records = [r for r in server.audit_records() if r["event"] == "auth"]
    assert records and records[-1]["ok"] is False


def test_auth_deadline_is_not_extended_by_dribbling(start_server) -> None:
    """A client that sends a byte at a time is still cut off at the deadline."""
    server = start_server("--auth-timeout", "0.5")
    frame = encode_frame(Auth.unsigned(version=PROTOCOL_VERSION, nonce="a" * 64).signed(bytes(32)))
    with Wire.open(server.host, server.port, key=server.key) as wire:
        opened = time.monotonic()
        wire.read_hello(2)
        for byte in frame[:40]:
            if select.select([wire.sock], [], [], 0)[0]:
                break  # the error has arrived: stop before a write could reset
            try:
                wire.send_raw(bytes([byte]))
            except OSError:
                break  # the server has closed: that is the point
            time.sleep(0.05)
            if time.monotonic() - opened > 1.0:
                break
        error = wire.expect_error_then_eof("auth.timeout", timeout=3.0)
        assert error.fatal
        assert time.monotonic() - opened <= 1.5


def test_authenticated_connection_outlives_the_auth_deadline(start_server) -> None:
    server = start_server("--auth-timeout", "0.5")
    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate()
        time.sleep(0.8)
        command_id = wire.run(["echo", "late"])
        result = wire.wait(command_id, 5)
        assert bytes(result.stdout) == b"late\n"


def test_ping_is_answered_after_auth(server) -> None:
    from rexec.protocol import Ping

    with Wire.open(server.host, server.port, key=server.key) as wire:
        wire.authenticate()
        wire.send(Ping(seq=12345))
        pong = wire.next_event(2)
        assert pong.type == "pong" and pong.seq == 12345


def test_fresh_connection_after_failures_is_served(server) -> None:
    for _ in range(3):
        with Wire.open(server.host, server.port, key=server.key) as wire:
            wire.authenticate(mac=bytes(32), expect_ok=False)
            wire.expect_error_then_eof("auth.failed")
    result = run_once(server, ["echo", "ok"])
    assert bytes(result.stdout) == b"ok\n"
