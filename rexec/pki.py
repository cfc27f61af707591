"""A private CA for rexec's mutual TLS: what ``rexecd --init-tls DIR`` makes.

Files in DIR (keys mode 0600, certificates 0644, DIR itself 0700):

    ca.pem, ca.key           the CA; ca.key stays on this machine, it signs the rest
    server.pem, server.key   rexecd's certificate, for the names clients use to reach it
    client.pem, client.key   a client certificate; with ca.pem, what a client machine needs

The server trusts clients signed by the CA (``--tls-client-ca DIR/ca.pem``) and
clients trust the server the same way (``rexec run --tls-dir DIR``), so no
public CA is involved and none is trusted. Files that exist are kept and the
missing ones made: deleting server.pem and server.key, then running again
with other ``--tls-name``s, reissues the server's certificate under the same CA.

Keys are ECDSA P-256 (every TLS 1.2 and 1.3 stack has it); certificates are
X.509 v3 made with ``cryptography``: the CA with ``CA:TRUE, pathlen:0`` and
``keyCertSign``, the others with ``serverAuth`` or ``clientAuth`` only.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rexec.keyfile import OPEN_DIRECTORY, directory_open_to_others, untrusted_place

#: Lifetimes. The CA outlives the certificates it signs, so that reissuing
#: one (delete it, run again) never needs a new CA on every machine.
CA_LIFETIME = datetime.timedelta(days=3650)
CERT_LIFETIME = datetime.timedelta(days=825)
#: Backdating, so that a peer whose clock is a little behind accepts a new certificate.
_CLOCK_SKEW = datetime.timedelta(hours=1)

CA, SERVER, CLIENT = "ca", "server", "client"


class PkiError(Exception):
    """The directory can't be used or written; one line for a person."""


@dataclasses.dataclass(frozen=True)
class Made:
    """What ``init_tls`` did: the files it wrote and those it kept."""

    directory: Path
    written: tuple[str, ...]
    kept: tuple[str, ...]
    server_names: tuple[str, ...]
    server_expires: datetime.datetime
    #: Names asked for that a kept server certificate does not hold.
    missing_names: tuple[str, ...] = ()

    def path(self, stem: str, suffix: str) -> Path:
        return self.directory / f"{stem}.{suffix}"


def default_server_names() -> list[str]:
    """This machine's host name and its loopback names: what a server
    certificate covers when no ``--tls-name`` is given (no DNS is asked)."""
    return [socket.gethostname(), "localhost", "127.0.0.1", "::1"]


def init_tls(directory: Path, server_names: Sequence[str] = ()) -> Made:
    """Make the CA, server and client files that are missing in ``directory``.

    Args:
        directory: created (0700) if missing.
        server_names: DNS names and IP addresses for the server certificate
            (default: ``default_server_names()``); the first one is its CN.

    Raises:
        PkiError: a pair is half there, a name is not valid, or a file can't
            be read or written.
    """
    # dict.fromkeys: each name once, in the order given.
    names = _checked_names(list(dict.fromkeys(server_names or default_server_names())))
    directory = directory.absolute()  # the paths printed must work from anywhere
    try:
        # A directory, or a CA or key in it, another user could have put
        # there: their CA would sign our certificates (attacker8 F9). Looked
        # at before anything is made, and again for what was there.
        step = directory_open_to_others(directory / CA)
        if step is not None:
            raise PkiError(f"{directory}: the directory {step} {OPEN_DIRECTORY}")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in (directory, *(p for p in directory.iterdir() if p.suffix in (".pem", ".key"))):
            why = untrusted_place(path)
            if why is not None:
                raise PkiError(f"{path}: {why}")
    except OSError as exc:
        raise PkiError(f"cannot create {directory}: {exc.strerror}") from None
    now = datetime.datetime.now(datetime.UTC)
    written: list[str] = []
    kept: list[str] = []
    ca = _load_pair(directory, CA)
    if ca is None:
        ca = _new_ca(now)
        _write_pair(directory, CA, ca, written)
    else:
        kept += [f"{CA}.pem", f"{CA}.key"]
    server = _load_pair(directory, SERVER)
    if server is None:
        server = _new_leaf(ca, names, ExtendedKeyUsageOID.SERVER_AUTH, now)
        _write_pair(directory, SERVER, server, written)
    else:
        kept += [f"{SERVER}.pem", f"{SERVER}.key"]
    if _load_pair(directory, CLIENT) is None:
        client = _new_leaf(ca, ["rexec client"], ExtendedKeyUsageOID.CLIENT_AUTH, now)
        _write_pair(directory, CLIENT, client, written)
    else:
        kept += [f"{CLIENT}.pem", f"{CLIENT}.key"]
    certificate = server[0]
    held = _subject_alt_names(certificate)
    asked = [str(name.value) if not isinstance(name, str) else name for name in names]
    missing = [name for name in asked if name.lower() not in {h.lower() for h in held}]
    return Made(
        directory,
        tuple(written),
        tuple(kept),
        tuple(held),
        certificate.not_valid_after_utc,
        tuple(missing) if server_names else (),
    )


_Pair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


#: A DNS label as a certificate carries it (IDNA-encoded): letters, digits and
#: inner hyphens, at most 63 characters.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _checked_names(names: Sequence[str]) -> list[x509.GeneralName | str]:
    result: list[x509.GeneralName | str] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        try:
            ascii_name = name.encode("idna").decode("ascii").rstrip(".")
        except UnicodeError:
            ascii_name = ""
        labels = ascii_name.split(".")
        if not 0 < len(ascii_name) <= 253 or not all(map(_LABEL.fullmatch, labels)):
            raise PkiError(f"{name!r} is neither a host name nor an IP address")
        result.append(ascii_name)
    return result


def _subject_alt_names(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in san]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _new_ca(now: datetime.datetime) -> _Pair:
    key = _new_key()
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"rexec CA on {socket.gethostname()}"[:64])]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _new_leaf(
    ca: _Pair, names: Sequence[x509.GeneralName | str], usage: x509.ObjectIdentifier,
    now: datetime.datetime,
) -> _Pair:  # fmt: skip
    ca_certificate, ca_key = ca
    key = _new_key()
    first = names[0]
    common_name = first if isinstance(first, str) else str(first.value)
    general_names = [x509.DNSName(n) if isinstance(n, str) else n for n in names]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(min(now + CERT_LIFETIME, ca_certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _load_pair(directory: Path, stem: str) -> _Pair | None:
    """The certificate and key ``stem``.pem/.key, or None if neither exists.

    Raises:
        PkiError: only one of them exists, or one can't be read or parsed.
    """
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    present = cert_path.exists(), key_path.exists()
    if present == (False, False):
        return None
    if present != (True, True):
        there, missing = (cert_path, key_path) if present[0] else (key_path, cert_path)
        raise PkiError(
            f"{missing} is missing but {there} exists: delete {there} to make a new pair"
        )
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        raise PkiError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise PkiError(
            f"{cert_path} or {key_path} is not a PEM certificate and key ({exc})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path} is not an EC key as --init-tls makes")
    return certificate, key


def _write_pair(directory: Path, stem: str, pair: _Pair, written: list[str]) -> None:
    certificate, key = pair
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key first: a certificate on disk always has its key beside it.
    _write_new(directory / f"{stem}.key", key_pem, 0o600)
    _write_new(
        directory / f"{stem}.pem", certificate.public_bytes(serialization.Encoding.PEM), 0o644
    )
    written += [f"{stem}.pem", f"{stem}.key"]


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data``; never replace an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise PkiError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(path, mode)  # the umask may have taken bits from a certificate's 0644


def init_tls_command(directory: Path, server_names: Sequence[str]) -> int:
    """``rexecd --init-tls DIR [--tls-name NAME]...``: make the files and say
    how to use them. Returns the exit status: 0 made or complete, 1 failed or
    a kept server certificate lacks a name asked for."""
    try:
        made = init_tls(directory, server_names)
    except PkiError as exc:
        print(f"rexecd: {exc}", file=sys.stderr)
        return 1
    path = made.path
    if made.missing_names:
        print(
            f"rexecd: {path(SERVER, 'pem')} exists and lacks {', '.join(made.missing_names)}: "
            f"to add them, delete it and {path(SERVER, 'key')}, then run this again with every "
            "name",
            file=sys.stderr,
        )
        return 1
    if made.written:
        print(f"rexecd: made {', '.join(made.written)} in {made.directory}")
    if made.kept:
        print(f"rexecd: kept {', '.join(made.kept)} in {made.directory}")
    expires = made.server_expires.date().isoformat()
    print(f"rexecd: the server certificate is for {', '.join(made.server_names)} (until {expires})")
    host = made.server_names[0]
    host = f"[{host}]" if ":" in host else host
    print(
        "start the server with:\n"
        f"  rexecd --host 0.0.0.0 --tls-cert {path(SERVER, 'pem')} --tls-key {path(SERVER, 'key')}"
        f" --tls-client-ca {path(CA, 'pem')}\n"
        "on each client machine, put ca.pem, client.pem and client.key in ~/.config/rexec/tls/\n"
        "and this server's key file in ~/.config/rexec/key (README, 'A second machine'), then:\n"
        f"  rexec run --tls {host} uname -a"
    )
    return 0
