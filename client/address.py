"""Parse ``HOST[:PORT]`` addresses as users type them."""

from __future__ import annotations

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
    elif text.count(":") > 1:
        host, port_text = text, None
    else:
        host, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host:
        raise ValueError(f"bad address {text!r}: the host is missing")
    if port_text is None:
        return Address(host, default_port)
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad address {text!r}: the port must be a number from 1 to 65535")
    return Address(host, int(port_text))
