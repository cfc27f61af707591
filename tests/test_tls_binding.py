"""rexec.tls_binding: the RFC 9266 tls-exporter value, computed through ctypes
on the stdlib's TLS objects (trustme certificates; no network but loopback).

The value is checked three ways: both ends of a session agree; different
sessions differ; and OpenSSL's own command line (``openssl s_client
-keymatexport``), an implementation independent of ours, prints the same bytes.
The end-to-end cases (a man in the middle caught) are in tests/server/test_tls.py.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from rexec.binding import connection_binding
from rexec.protocol import endpoint_binding
from rexec.tls_binding import (
    BINDING_SIZE,
    LABEL,
    ExportFailed,
    tls_exporter,
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def contexts(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    return client, server


def _session(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], maximum: ssl.TLSVersion | None = None
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A client and a server SSLObject with their handshake done in memory."""
    client_context, server_context = contexts
    if maximum is not None:
        client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_context.load_verify_locations(cadata=contexts[0].get_ca_certs(True)[0])
        client_context.maximum_version = maximum
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, server_in = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(client_in, to_server, server_hostname="127.0.0.1")
    server = server_context.wrap_bio(server_in, to_client, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        server_in.write(to_server.read())
        client_in.write(to_client.read())
    assert client.version() and server.version()
    return client, server


def test_both_ends_agree(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    client, server = _session(contexts)
    assert client.version() == "TLSv1.3"
    value = tls_exporter(client)
    assert len(value) == BINDING_SIZE
    assert tls_exporter(server) == value
    assert connection_binding(_Link(ssl_object=client), server=False) == value
    assert connection_binding(_Link(ssl_object=server), server=True) == value


def test_each_session_has_its_own(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    values = {tls_exporter(_session(contexts)[0]) for _ in range(3)}
    assert len(values) == 3


class _Link:
    """What ``connection_binding`` asks of a transport: its extra info."""

    def __init__(self, **extra: object) -> None:
        self._extra = extra

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._extra.get(name, default)


def test_without_tls_the_binding_is_the_two_ends_as_each_side_sees_them() -> None:
    client_end, server_end = ("127.0.0.1", 50000), ("127.0.0.1", 7420)
    client = _Link(sockname=client_end, peername=server_end)
    server = _Link(sockname=server_end, peername=client_end)
    both = endpoint_binding(client_end, server_end)
    assert connection_binding(client, server=False) == connection_binding(server, server=True)
    assert connection_binding(client, server=False) == both
    # A relay's connection to the server starts at a port of its own.
    relayed = _Link(sockname=server_end, peername=("127.0.0.1", 50001))
    assert connection_binding(relayed, server=True) != both


def test_tls_1_2_is_refused(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    # RFC 9266 forbids tls-exporter on TLS 1.2 without the extended master
    # secret, which the ssl module can't confirm: refuse, never guess.
    client, server = _session(contexts, maximum=ssl.TLSVersion.TLSv1_2)
    assert client.version() == "TLSv1.2"
    for side in (client, server):
        with pytest.raises(ExportFailed, match="TLSv1.3"):
            tls_exporter(side)


def test_before_the_handshake_there_is_nothing_to_bind(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client = contexts[0].wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="x")
    with pytest.raises(ExportFailed):
        tls_exporter(client)


class _Imitation:
    """Looks like a TLS 1.3 object to a careless reader, but is not one."""

    server_side = False

    def __init__(self, inner: object) -> None:
        self._sslobj = inner

    def version(self) -> str:
        return "TLSv1.3"


def test_objects_that_only_look_like_tls_are_refused(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    # The layout checks hold before any pointer is followed: a foreign object
    # in _sslobj, even one with a real context, is refused, not dereferenced.
    class Holder:
        context = contexts[0]

    for inner in (None, object(), Holder()):
        with pytest.raises(ExportFailed):
            tls_exporter(_Imitation(inner))  # type: ignore[arg-type]


def test_a_session_mismatched_with_its_reported_role_is_refused(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    client, _ = _session(contexts)
    impostor = _Imitation(client._sslobj)  # type: ignore[attr-defined]
    impostor.server_side = True
    with pytest.raises(ExportFailed, match="role"):
        tls_exporter(impostor)  # type: ignore[arg-type]


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(path)
    return path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(30)
        yield sock


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command line")
def test_openssl_command_line_exports_the_same_bytes(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], ca_file: Path, listener: socket.socket
) -> None:
    # An independent computation of RFC 9266's value: OpenSSL's s_client
    # prints the keying material it exports with our label and length.
    server_value: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with contexts[1].wrap_socket(conn, server_side=True) as tls:
            server_value.append(tls_exporter(tls))
            tls.recv(1)  # until the client leaves

    thread = threading.Thread(target=serve)
    thread.start()
    port = listener.getsockname()[1]
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca_file),
         "-tls1_3", "-keymatexport", LABEL.decode(), "-keymatexportlen", str(BINDING_SIZE)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    thread.join(30)
    printed = re.search(r"Keying material: ([0-9A-F]{64})", result.stdout)
    assert printed is not None, result.stdout + result.stderr
    assert server_value == [bytes.fromhex(printed.group(1))]
