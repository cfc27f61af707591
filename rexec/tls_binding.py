"""The TLS channel binding of a connection: RFC 9266 ``tls-exporter``.

The handshake's macs cover this value (protocol.md 3.1), so a man in the
middle who terminates TLS with a certificate the client happens to trust, and
opens a TLS session of his own to the server, is caught: the two sessions
export different values.

CPython's ``ssl`` module can't export keying material (cpython#82133, open),
and the one binding it offers, ``tls-unique``, is undefined for TLS 1.3 and
unsound before it (RFC 9266 1; cpython#95341). pyOpenSSL can export, but
asyncio's TLS transport works only with the stdlib's ``SSLObject``. So this
module calls OpenSSL's ``SSL_export_keying_material`` itself, through ctypes,
on the ``SSL*`` behind an ``ssl.SSLObject`` or ``ssl.SSLSocket``: the same
library the ``_ssl`` module is linked to (its symbols are looked up through
``_ssl``'s own handle), and the same pointer ``_ssl`` uses, read from its
``PySSLSocket`` struct (``PyObject_HEAD``, ``Socket``, ``ssl``, ``ctx``: the
layout of every CPython 3 so far). Nothing is trusted blindly:

- the struct's ``ctx`` member must be the very context object Python reports,
  which pins the layout before any pointer is followed;
- ``SSL_get_SSL_CTX`` of the ``SSL*`` must be the ``SSL_CTX*`` read the same
  way from that context;
- OpenSSL must report the same version string and role as the ``ssl`` object,
  and the library must be the version the ``ssl`` module reports.

Only TLS 1.3 is bound: RFC 9266 forbids ``tls-exporter`` on TLS 1.2 without the
extended master secret, which ``ssl`` can't confirm. Whatever does not check out
raises ``ExportFailed``, and both the server and the client then refuse
the connection (fail closed) rather than run it unbound.
"""

from __future__ import annotations

import _ssl  # the extension module: its handle reaches the libssl it uses
import ctypes
import functools
import ssl
import sys

#: RFC 9266 2: the exporter's label, context (empty) and length.
LABEL = b"EXPORTER-Channel-Binding"
BINDING_SIZE = 32
#: The TLS version the binding is computed for.
REQUIRED_VERSION = "TLSv1.3"

_POINTER = ctypes.sizeof(ctypes.c_void_p)


class ExportFailed(Exception):
    """The channel binding of this session can't be computed; the message
    says why, in one line."""


class _OpenSSL:
    """The few OpenSSL functions needed, from the library ``_ssl`` uses."""

    def __init__(self) -> None:
        try:
            library = ctypes.CDLL(_ssl.__file__)
            self.export = library.SSL_export_keying_material
            self.get_ctx = library.SSL_get_SSL_CTX
            self.get_version = library.SSL_get_version
            self.is_server = library.SSL_is_server
            version_num = library.OpenSSL_version_num
        except (OSError, AttributeError) as exc:
            raise ExportFailed(
                f"this Python's ssl module does not expose OpenSSL's functions ({exc})"
            ) from None
        self.export.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
            ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
        ]  # fmt: skip
        self.export.restype = ctypes.c_int
        self.get_ctx.argtypes = [ctypes.c_void_p]
        self.get_ctx.restype = ctypes.c_void_p
        self.get_version.argtypes = [ctypes.c_void_p]
        self.get_version.restype = ctypes.c_char_p
        self.is_server.argtypes = [ctypes.c_void_p]
        self.is_server.restype = ctypes.c_int
        version_num.argtypes = []
        version_num.restype = ctypes.c_ulong
        if version_num() != ssl.OPENSSL_VERSION_NUMBER:
            raise ExportFailed("the OpenSSL found is not the one the ssl module uses")


@functools.cache
def _openssl() -> _OpenSSL:
    if sys.implementation.name != "cpython":
        raise ExportFailed("the TLS channel binding needs CPython's ssl module")
    return _OpenSSL()


def _read_pointer(address: int) -> int:
    return ctypes.c_void_p.from_address(address).value or 0


def _ssl_pointer(tls: ssl.SSLObject | ssl.SSLSocket, openssl: _OpenSSL) -> int:
    """The ``SSL*`` behind ``tls``, validated as the module docstring says."""
    inner = getattr(tls, "_sslobj", None)
    context = getattr(inner, "context", None)
    if inner is None or not isinstance(context, ssl.SSLContext):
        raise ExportFailed("not a TLS connection of the ssl module")
    head = object.__basicsize__  # PyObject_HEAD, whatever the build
    if type(inner).__basicsize__ < head + 3 * _POINTER:
        raise ExportFailed("unexpected layout of the ssl module's socket object")
    # PySSLSocket: Socket, then ssl, then ctx.
    if _read_pointer(id(inner) + head + 2 * _POINTER) != id(context):
        raise ExportFailed("unexpected layout of the ssl module's socket object")
    ssl_ptr = _read_pointer(id(inner) + head + _POINTER)
    # PySSLContext: ctx right after the head.
    ctx_ptr = _read_pointer(id(context) + head)
    if not ssl_ptr or not ctx_ptr or openssl.get_ctx(ssl_ptr) != ctx_ptr:
        raise ExportFailed("the TLS session does not match its context")
    version = openssl.get_version(ssl_ptr)
    if version is None or version.decode("ascii", "replace") != tls.version():
        raise ExportFailed("OpenSSL and the ssl module disagree on the TLS version")
    if bool(openssl.is_server(ssl_ptr)) != tls.server_side:
        raise ExportFailed("OpenSSL and the ssl module disagree on the TLS role")
    return ssl_ptr


def tls_exporter(tls: ssl.SSLObject | ssl.SSLSocket) -> bytes:
    """The 32-byte ``tls-exporter`` channel binding of an established TLS 1.3
    session (RFC 9266: label ``EXPORTER-Channel-Binding``, empty context).

    Raises:
        ExportFailed: not TLS 1.3, the handshake is not done, or the
            value can't be computed safely on this Python.
    """
    version = tls.version()
    if version != REQUIRED_VERSION:
        raise ExportFailed(
            f"the TLS channel binding needs {REQUIRED_VERSION}, not {version or 'no session'}"
        )
    openssl = _openssl()
    ssl_ptr = _ssl_pointer(tls, openssl)
    out = ctypes.create_string_buffer(BINDING_SIZE)
    if openssl.export(ssl_ptr, out, BINDING_SIZE, LABEL, len(LABEL), b"", 0, 1) != 1:
        raise ExportFailed("OpenSSL could not export the keying material")
    return out.raw
