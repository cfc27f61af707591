"""TLS with client certificates (trustme): the protocol inside TLS."""

from __future__ import annotations

import socket
import ssl
import time
import warnings

import pytest
import trustme

from .wire import ServerClosed, Wire


@pytest.fixture
def pki(tmp_path):
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("client.example")
    paths = {
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server.key",
        "ca": tmp_path / "ca.pem",
    }
    server_cert.cert_chain_pems[0].write_to_path(paths["cert"])
    for blob in server_cert.cert_chain_pems[1:]:
        blob.write_to_path(paths["cert"], append=True)
    server_cert.private_key_pem.write_to_path(paths["key"])
    ca.cert_pem.write_to_path(paths["ca"])
    return ca, client_cert, paths


@pytest.fixture
def tls_server(start_server, pki):
    _, _, paths = pki
    return start_server("--tls-cert", str(paths["cert"]), "--tls-key", str(paths["key"]),
                        "--tls-client-ca", str(paths["ca"]))


def client_context(ca, client_cert=None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    if client_cert is not None:
        client_cert.configure_cert(context)
    return context


def test_valid_client_certificate_runs_a_command(tls_server, pki) -> None:
    ca, client_cert, _ = pki
    with Wire.open(tls_server.host, tls_server.port, key=tls_server.key,
                   ssl_context=client_context(ca, client_cert)) as wire:
        assert isinstance(wire.sock, ssl.SSLSocket)
        assert wire.sock.version() in ("TLSv1.2", "TLSv1.3")
        wire.authenticate()
        result = wire.wait(wire.run(["echo", "ok"]), 5)
        assert bytes(result.stdout) == b"ok\n" and result.exit.exit_code == 0
        # Bulk output across TLS records.
        result = wire.wait(wire.run(["head", "-c", "3000000", "/dev/zero"]), 20)
        assert len(result.stdout) == 3_000_000


def test_no_client_certificate_fails_the_tls_handshake(tls_server, pki) -> None:
    ca, _, _ = pki
    context = client_context(ca)
    got_hello = False
    with (
        pytest.raises((ssl.SSLError, ConnectionError, ServerClosed, TimeoutError)),
        Wire.open(tls_server.host, tls_server.port, key=tls_server.key, ssl_context=context) as wire,
    ):
            # With TLS 1.3 the server's refusal arrives after the client's
            # side of the handshake: the first read fails instead.
            wire.read_hello(3)
            got_hello = True
    assert not got_hello


def test_certificate_from_another_ca_fails(tls_server, pki) -> None:
    ca, _, _ = pki
    stranger = trustme.CA().issue_cert("client.example")
    context = client_context(ca, stranger)
    got_hello = False
    with (
        pytest.raises((ssl.SSLError, ConnectionError, ServerClosed, TimeoutError)),
        Wire.open(tls_server.host, tls_server.port, key=tls_server.key, ssl_context=context) as wire,
    ):
            wire.read_hello(3)
            got_hello = True
    assert not got_hello


def test_plaintext_to_the_tls_port_is_closed(tls_server) -> None:
    with socket.create_connection((tls_server.host, tls_server.port), timeout=5) as sock:
        sock.sendall(b"\x25\x00\x00\x00" + b'{"type":"ping","data_size":0,"seq":7}')
        sock.settimeout(5)
        started = time.monotonic()
        received = b""
        try:
            while True:
                data = sock.recv(4096)
                if not data:
                    break
                received += data
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 3
        assert b"hello" not in received


def test_tls_1_1_client_is_refused(tls_server, pki) -> None:
    ca, client_cert, _ = pki
    context = client_context(ca, client_cert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError):
            pytest.skip("this OpenSSL cannot even offer TLS 1.1")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            Wire.open(tls_server.host, tls_server.port, ssl_context=context).close()


def test_wrong_hmac_key_still_fails_inside_tls(tls_server, pki) -> None:
    ca, client_cert, _ = pki
    with Wire.open(tls_server.host, tls_server.port, key=tls_server.key,
                   ssl_context=client_context(ca, client_cert)) as wire:
        wire.authenticate(mac=bytes(32), expect_ok=False)
        error = wire.next_event(5)
        assert error.type == "error" and error.code == "auth.failed"
