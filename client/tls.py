"""TLS settings for clients, from PEM files.

``rexecd --init-tls DIR`` writes the files a client needs into DIR under the
names below; ``tls_files(DIR)`` finds them. The client's default TLS
directory is ``~/.config/rexec/tls`` (``$XDG_CONFIG_HOME/rexec/tls``).
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rexec.keyfile import config_dir

#: File names in a TLS directory (as ``rexecd --init-tls`` writes them).
CA_FILE = "ca.pem"
CLIENT_CERT_FILE = "client.pem"
CLIENT_KEY_FILE = "client.key"

_T = TypeVar("_T")


class TlsSetupError(ValueError):
    """A TLS file is missing or unusable; one line naming it."""


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """The PEM files of a TLS client; None where not used."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


def default_tls_dir() -> Path:
    """Where ``--tls`` looks for ``ca.pem``, ``client.pem`` and ``client.key``."""
    return config_dir() / "tls"


def tls_files(directory: Path, *, required: bool) -> TlsFiles:
    """The files of ``directory`` that exist: the CA to trust and a client
    certificate with its key.

    Raises:
        TlsSetupError: with ``required``, the directory has no CA file; or a
            client certificate is there without its key (or the reverse).
    """
    ca, cert, key = (directory / name for name in (CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE))
    if required and not ca.exists():
        raise TlsSetupError(f"{ca} does not exist (make it with: rexecd --init-tls {directory})")
    if cert.exists() != key.exists():
        missing = key if cert.exists() else cert
        raise TlsSetupError(f"{missing} does not exist, but its pair does")
    return TlsFiles(
        ca if ca.exists() else None, cert if cert.exists() else None, key if key.exists() else None
    )


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
        TlsSetupError (a ValueError): ``key_file`` without ``cert_file``, or a
            file that can't be read or parsed, named in the message.
    """
    if key_file is not None and cert_file is None:
        raise TlsSetupError("a TLS client key needs its certificate too")
    # With a CA file, only that CA is trusted, not the system's as well: a
    # public CA could otherwise vouch for a server of the private one.
    context = _load(ca_file or "the system's CA certificates",
                    lambda: ssl.create_default_context(cafile=ca_file))  # fmt: skip
    # TLS 1.3: the handshake binds to its tls-exporter value (protocol.md 9).
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert_file is not None:
        _load(cert_file, lambda: context.load_cert_chain(cert_file, key_file))
    return context


def _load(what: str | Path, action: Callable[[], _T]) -> _T:
    """Run ``action``; turn its failure into one line naming ``what``."""
    try:
        return action()
    except ssl.SSLError as exc:
        raise TlsSetupError(f"{what}: not a usable PEM file ({exc.reason or exc})") from None
    except OSError as exc:
        name = exc.filename or what
        raise TlsSetupError(f"cannot read {name}: {(exc.strerror or str(exc)).lower()}") from None
