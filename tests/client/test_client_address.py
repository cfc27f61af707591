"""``HOST[:PORT]`` parsing, as users type addresses."""

from __future__ import annotations

import pytest

from rexec_client import DEFAULT_PORT, Address, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", Address("example.com", DEFAULT_PORT)),
        ("example.com:22", Address("example.com", 22)),
        ("10.0.0.1:65535", Address("10.0.0.1", 65535)),
        ("[::1]", Address("::1", DEFAULT_PORT)),
        ("[::1]:9000", Address("::1", 9000)),
        ("::1", Address("::1", DEFAULT_PORT)),
        ("[fe80::1%eth0]:1", Address("fe80::1%eth0", 1)),
    ],
)
def test_valid_addresses(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


def test_default_port_is_7420() -> None:
    assert DEFAULT_PORT == 7420


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "host is missing"),
        (":7420", "host is missing"),
        ("host:", "port must be a number"),
        ("host:0", "port must be a number"),
        ("host:65536", "port must be a number"),
        ("host:http", "port must be a number"),
        ("host:٣", "port must be a number"),
        ("[::1", "missing ']'"),
        ("[::1]x", "expected ':PORT'"),
        ("[]:1", "host is missing"),
    ],
)
def test_invalid_addresses_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as info:
        parse_address(text)
    assert repr(text) in str(info.value)


def test_str_brackets_ipv6() -> None:
    assert str(Address("::1", 7)) == "[::1]:7"
    assert str(Address("h", 7)) == "h:7"
