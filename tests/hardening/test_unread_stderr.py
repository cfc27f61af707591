"""rexecd's own messages never stop it (attacker II, finding 3): with its
stderr on a pipe nobody reads, it goes on serving; and a TLS client's
close_notify makes no message at all."""

from __future__ import annotations

import fcntl
import signal
import socket
import ssl
import subprocess

from server.test_tls import client_context, pki  # noqa: F401  (pki: a fixture)

from .conftest import healthy, wait_until
from .test_tls_admission import served_over_tls, tls_daemon  # noqa: F401  (a fixture)

_F_SETPIPE_SZ = 1031


def reloads(server) -> list[dict]:
    return [record for record in server.audit_records(settle=0) if record["event"] == "reload"]


def test_an_unread_stderr_does_not_stop_the_daemon(daemon) -> None:
    server = daemon(stderr=subprocess.PIPE)
    assert server.process.stderr is not None
    fcntl.fcntl(server.process.stderr.fileno(), _F_SETPIPE_SZ, 4096)
    # Each reload says a line on stderr (and writes an audit record): 150
    # lines are twice what the pipe holds.
    for n in range(1, 151):
        server.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda n=n: len(reloads(server)) >= n, 5), n
    assert healthy(server, timeout=5)
    # Read at last: the lines are all there.
    server.process.send_signal(signal.SIGTERM)
    stderr = server.process.stderr.read().decode()
    assert stderr.count("reloaded the configuration") == 150


def test_a_tls_close_notify_says_nothing(tls_daemon, pki) -> None:  # noqa: F811
    ca, client_cert, _ = pki
    server = tls_daemon()
    context = client_context(ca, client_cert)
    for _ in range(5):  # a client with a certificate but not the key: it says goodbye
        with context.wrap_socket(
            socket.create_connection((server.host, server.port), timeout=5),
            server_hostname="127.0.0.1",
        ) as sock:
            sock.recv(4096)  # hello
            try:
                sock.unwrap()
            except (ssl.SSLError, OSError):
                pass
    assert wait_until(lambda: len(server.events("disconnect")) == 5, 5)
    assert served_over_tls(server, pki) < 2.0
    assert "eof_received" not in server.stderr()
