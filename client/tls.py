"""TLS settings for clients, from PEM files."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_ssl_context(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ssl.SSLContext:
    """A TLS 1.3 client context that verifies the server's certificate.

    Args:
        ca_file: CA certificates (PEM) to trust; default: the system's.
        cert_file, key_file: a client certificate chain and its key (PEM),
            for servers that require one (``rexecd --tls-client-ca``).

    Raises:
        ValueError: ``key_file`` without ``cert_file``.
        OSError, ssl.SSLError: a file can't be read or parsed.
    """
    if key_file is not None and cert_file is None:
        raise ValueError("a TLS client key needs its certificate too")
    context = ssl.create_default_context(cafile=ca_file)
    # TLS 1.3: the handshake binds to its tls-exporter value (protocol.md 9).
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
