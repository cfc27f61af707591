"""Parse ``HOST[:PORT]`` addresses as users type them."""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

#: The rexec port (protocol.md, section 1).
DEFAULT_PORT = 7420


class Address(NamedTuple):
    """A server address; ``host`` is bare (no brackets) even for IPv6."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> Address:
    """Parse ``HOST``, ``HOST:PORT``, ``[IPV6]``, ``[IPV6]:PORT`` or a bare IPv6
    address (which can't carry a port: more than one colon means IPv6).

    Raises:
        ValueError: a one-line message naming the address and what is wrong.
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"bad address {text!r}: missing ']' after the IPv6 address")
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
        if host and not _is_ipv6(host):
            raise ValueError(f"bad address {text!r}: {host!r} in brackets is not an IPv6 address")
    elif text.count(":") > 1:
        host, port_text = text, None
        if not _is_ipv6(host):
            raise ValueError(
                f"bad address {text!r}: not an IPv6 address"
                " (write IPv6 with a port as [ADDRESS]:PORT)"
            )
    else:
        host, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
        if "@" in host:
            raise ValueError(
                f"bad address {text!r}: rexec has no USER@ (commands run as the server's "
                "account, or a key's run_as): give HOST[:PORT]"
            )
        if host:
            _check_host_name(text, host)
    if not host:
        raise ValueError(f"bad address {text!r}: the host is missing")
    if port_text is None:
        return Address(host, default_port)
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad address {text!r}: the port must be a number from 1 to 65535")
    return Address(host, int(port_text))


def library_address(host: str, port: int | None) -> Address:
    """The server that the library's ``host`` and ``port`` arguments name.

    ``host`` is written as on the command line, so it may carry the port
    (``"server:7000"``, ``"[::1]:7000"``); a bare IPv6 address is fine too.
    ``port`` defaults to the one in ``host``, else ``DEFAULT_PORT``.

    Raises:
        ValueError: a malformed address, or two different ports.
    """
    address = parse_address(host, default_port=port if port is not None else DEFAULT_PORT)
    if port is not None and address.port != port:
        raise ValueError(f"bad address {host!r}: it names port {address.port}, but port={port}")
    if not 1 <= address.port <= 65535:
        raise ValueError(f"bad port {address.port}: the port must be a number from 1 to 65535")
    return address


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _check_host_name(text: str, host: str) -> None:
    """Refuse names no resolver could look up (an empty or over-long label, or
    too long in all), which Python's resolver call would report as a codec
    error rather than as a name that does not exist."""
    try:
        encoded = host.encode("idna")
    except UnicodeError:
        raise ValueError(
            f"bad address {text!r}: not a host name (a part between dots is empty or longer "
            "than 63 characters)"
        ) from None
    if len(encoded.rstrip(b".")) > 253:
        raise ValueError(f"bad address {text!r}: a host name is at most 253 characters")
