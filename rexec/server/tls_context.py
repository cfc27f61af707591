"""The server's TLS context, from its settings: TLS 1.3 only (the handshake's
macs bind to its ``tls-exporter``, protocol.md 9), its certificate and key,
and the client CA that makes TLS mutual. Each file is judged as the key file
is: another user's CA would vouch for their own clients, their server key
would be theirs to read (attacker8 F9)."""

from __future__ import annotations

import ssl

from rexec.keyfile import untrusted_place

from .settings import Settings


class TlsSetupError(Exception):
    """Why the TLS context can't be made, in one line for the operator."""


def server_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The context of ``--tls-cert``/``--tls-key`` (and ``--tls-client-ca``,
    which makes TLS mutual), or None without TLS.

    Raises:
        TlsSetupError: a file missing, unreadable, or one another user could
            have made or replaced, as the key file is judged.
    """
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise TlsSetupError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise TlsSetupError("TLS needs both --tls-cert and --tls-key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # TLS 1.3: the handshake's macs bind to its tls-exporter (protocol.md 9).
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        for path in filter(None, (settings.tls_cert, settings.tls_key, settings.tls_client_ca)):
            why = untrusted_place(path)
            if why is not None:
                raise TlsSetupError(f"cannot load TLS file {path}: {why}")
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=settings.tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"cannot load TLS files: {exc}") from None
    return context
