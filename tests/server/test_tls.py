"""TLS with client certificates (trustme): the protocol inside TLS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import warnings
from collections.abc import AsyncIterator

import pytest
import trustme

from .wire import ServerClosed, Wire, connect


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


def tls_flags(pki, *, client_certificates: bool = True) -> list[str]:
    """rexecd's flags to serve TLS with ``pki``'s certificate, requiring client
    certificates from its CA unless ``client_certificates=False``."""
    _, _, paths = pki
    flags = ["--tls-cert", str(paths["cert"]), "--tls-key", str(paths["key"])]
    return [*flags, "--tls-client-ca", str(paths["ca"])] if client_certificates else flags


@pytest.fixture
def tls_server(start_server, pki):
    return start_server(*tls_flags(pki))


def client_context(ca, client_cert=None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    if client_cert is not None:
        client_cert.configure_cert(context)
    return context


def assert_handshake_refused(server, context: ssl.SSLContext) -> None:
    """A client with ``context`` never gets ``server``'s hello."""
    got_hello = False
    with (
        pytest.raises((ssl.SSLError, ConnectionError, ServerClosed, TimeoutError)),
        connect(server, auth=False, ssl_context=context) as wire,
    ):
        # With TLS 1.3 the server's refusal arrives after the client's
        # side of the handshake: the first read fails instead.
        wire.read_hello(3)
        got_hello = True
    assert not got_hello


def test_valid_client_certificate_runs_a_command(tls_server, pki) -> None:
    ca, client_cert, _ = pki
    with connect(tls_server, auth=False, ssl_context=client_context(ca, client_cert)) as wire:
        assert isinstance(wire.sock, ssl.SSLSocket)
        assert wire.sock.version() == "TLSv1.3"
        wire.authenticate()
        result = wire.wait(wire.run(["echo", "ok"]), 5)
        assert bytes(result.stdout) == b"ok\n" and result.exit.exit_code == 0
        # Bulk output across TLS records.
        result = wire.wait(wire.run(["head", "-c", "3000000", "/dev/zero"]), 20)
        assert len(result.stdout) == 3_000_000


def test_no_client_certificate_fails_the_tls_handshake(tls_server, pki) -> None:
    ca, _, _ = pki
    assert_handshake_refused(tls_server, client_context(ca))


def test_certificate_from_another_ca_fails(tls_server, pki) -> None:
    ca, _, _ = pki
    stranger = trustme.CA().issue_cert("client.example")
    assert_handshake_refused(tls_server, client_context(ca, stranger))


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
    with connect(tls_server, auth=False, ssl_context=client_context(ca, client_cert)) as wire:
        wire.authenticate(mac=bytes(32), expect_ok=False)
        error = wire.next_event(5)
        assert error.type == "error" and error.code == "auth.failed"


# --- the channel binding: a man in the middle who terminates TLS is caught --------------------


@pytest.fixture
def server_auth_only(start_server, pki):
    """TLS without client certificates, so that a relay can open its own session."""
    return start_server(*tls_flags(pki, client_certificates=False))


@contextlib.asynccontextmanager
async def relay(
    target: tuple[str, int], mitm: tuple[ssl.SSLContext, ssl.SSLContext] | None
) -> AsyncIterator[tuple[int, list[int]]]:
    """Accept connections on 127.0.0.1 and relay each to ``target``: byte for
    byte over TCP, or, with ``mitm``, as a man in the middle would: end the
    client's TLS with a certificate of its own (from a CA the client trusts),
    open a TLS session of its own to the server, and relay the plaintext
    between the two. Yields the port and a one-item list counting the bytes
    relayed."""
    relayed = [0]
    tasks: set[asyncio.Task[None]] = set()

    async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                relayed[0] += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        upstream = mitm[1] if mitm else None
        server_r, server_w = await asyncio.open_connection(
            *target, ssl=upstream, server_hostname=target[0] if upstream else None
        )
        try:
            await asyncio.gather(copy(client_r, server_w), copy(server_r, client_w))
        finally:
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=mitm[0] if mitm else None)
    try:
        yield server.sockets[0].getsockname()[1], relayed
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def _through_relay(server, ca, *, mitm: bool) -> tuple[bytes | Exception, int]:
    """Run ``echo through`` with the client library through a relay to
    ``server`` (over TLS trusting ``ca``, or without TLS when ``ca`` is None);
    returns its output (or the exception) and the bytes relayed."""
    from rexec_client import connect

    contexts = None
    if mitm:
        own = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(own)  # another certificate, same trusted CA
        upstream = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(upstream)
        contexts = (own, upstream)
    client_context = None
    if ca is not None:
        client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(client_context)

    async def go() -> tuple[bytes | Exception, int]:
        async with relay((server.host, server.port), contexts) as (port, relayed):
            try:
                async with await connect(
                    "127.0.0.1", port, server.key, ssl=client_context
                ) as connection:
                    result = await connection.run(["echo", "through"])
                    return result.stdout, relayed[0]
            except Exception as exc:  # noqa: BLE001 - handed to the test to judge
                return exc, relayed[0]

    return asyncio.run(asyncio.wait_for(go(), 30))


def test_a_plain_tcp_relay_changes_nothing(server_auth_only, pki) -> None:
    # The control: the TLS session is still end to end, so is its binding.
    ca, _, _ = pki
    output, relayed = _through_relay(server_auth_only, ca, mitm=False)
    assert output == b"through\n" and relayed > 0


def test_a_relay_of_a_connection_without_tls_is_caught(server) -> None:
    """[auth.binding] without TLS: each side binds the macs to the two ends of
    the connection as it sees them, and a byte relay's two connections have
    different ends (attacker8 F6: another local user's port, which a
    discovery answer had named, relayed a client and ran a command of its
    own with the client's key). Refused; the client says a relay needs TLS."""
    from rexec_client import AuthenticationError

    outcome, relayed = _through_relay(server, None, mitm=False)
    assert isinstance(outcome, AuthenticationError), outcome
    assert "relayed it" in str(outcome) and "use TLS" in str(outcome)
    assert relayed > 0  # it really went through the relay
    records = [r for r in server.audit_records() if r["event"] == "auth"]
    assert records and records[-1]["ok"] is False


def test_a_tls_terminating_man_in_the_middle_is_caught(server_auth_only, pki) -> None:
    """[auth.binding]: the relay holds a certificate the client trusts and
    relays every byte faithfully, yet the two TLS sessions export different
    values: the server refuses the client's mac, and the client says why."""
    from rexec_client import AuthenticationError

    ca, _, _ = pki
    outcome, relayed = _through_relay(server_auth_only, ca, mitm=True)
    assert isinstance(outcome, AuthenticationError), outcome
    assert "altered the handshake" in str(outcome)
    assert relayed > 0  # it really went through the relay
    records = [r for r in server_auth_only.audit_records() if r["event"] == "auth"]
    assert records and records[-1]["ok"] is False


def test_an_unbound_mac_is_refused_under_tls(server_auth_only, pki) -> None:
    # A client that skips the binding (empty, as without TLS) is refused.
    ca, _, _ = pki
    with Wire.open(
        server_auth_only.host,
        server_auth_only.port,
        key=server_auth_only.key,
        ssl_context=client_context(ca),
    ) as wire:
        assert len(wire.binding) == 32
        wire.authenticate(binding=b"", expect_ok=False)
        wire.expect_error_then_eof("auth.failed")


def test_tls_1_2_client_is_refused(tls_server, pki) -> None:
    # [tls.version]: the binding needs TLS 1.3; 1.2 is refused in the TLS handshake.
    ca, client_cert, _ = pki
    context = client_context(ca, client_cert)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    # (asyncio's TLS server may close before its protocol_version alert leaves:
    # the client then sees an EOF in the handshake.)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        Wire.open(tls_server.host, tls_server.port, ssl_context=context).close()
