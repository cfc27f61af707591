"""What the handshake's macs are bound to on one connection (protocol.md 3.1).

Under TLS, the session's ``tls-exporter`` value (``rexec.tls_binding``, which
loads ctypes and is imported only then); without TLS, the connection's two
TCP ends as this side sees them (``rexec.protocol.endpoint_binding``). A man in
the middle, whether he terminates TLS or relays plaintext byte for byte, holds
two connections whose bindings differ, so the macs disagree.
"""

from __future__ import annotations

from typing import Any, Protocol

from rexec.protocol import endpoint_binding


class BindingUnavailable(Exception):
    """The channel binding of this connection can't be computed; the message
    says why, in one line."""


class Link(Protocol):
    """An asyncio transport or stream writer: what is asked of a connection."""

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


def connection_binding(link: Link, *, server: bool) -> bytes:
    """The binding of the connection ``link`` as the server (``server``) or
    the client sees it.

    Raises:
        BindingUnavailable: a TLS session whose binding can't be computed
            (the connection must not go on unbound).
    """
    tls = link.get_extra_info("ssl_object")
    if tls is not None:
        from rexec.tls_binding import ExportFailed, tls_exporter

        try:
            return tls_exporter(tls)
        except ExportFailed as exc:
            raise BindingUnavailable(str(exc)) from None
    own, peer = link.get_extra_info("sockname"), link.get_extra_info("peername")
    return endpoint_binding(peer, own) if server else endpoint_binding(own, peer)
