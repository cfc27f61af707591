"""``rexec discover``: list the rexecd servers that answer discovery probes."""

from __future__ import annotations

import argparse
import collections
import json
import sys
from typing import Any

from ..discovery import (
    DEFAULT_ANNOUNCE_PORT,
    DEFAULT_TIMEOUT,
    DiscoveryError,
    discover,
    ignored_lines,
)
from .base import add_command, fail, positive_float

DESCRIPTION = """\
Find rexecd servers started with --announce: send one UDP probe to each
address (by default 127.0.0.1, the broadcast address of every IPv4 interface,
and 255.255.255.255) and list the servers that answer within --timeout.
A server answers only probes from its announce_networks (by default loopback
only). Finding a server proves nothing: connecting still needs the shared key.
"""

EPILOG = """\
output: one line per server, ADDRESS NAME TLS PROTOCOL; with --json, one JSON
object per line: address, host, port, name, protocol, tls, client_cert,
responder (the address the answer came from).

exit status: 0 servers found, 1 none answered, 255 no probe could be sent.

examples:
  rexec discover
  rexec discover --address 192.168.1.255 --timeout 2
  rexec discover --json | jq -r .address
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "discover",
        "find rexecd servers on the local network (UDP broadcast)",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=DEFAULT_TIMEOUT, metavar="S",
        help="seconds to wait for answers (default: %(default)g)",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_ANNOUNCE_PORT, metavar="P",
        help="UDP port the servers announce on (default: %(default)d)",
    )  # fmt: skip
    parser.add_argument(
        "--address", action="append", metavar="ADDR",
        help="send the probe here (a broadcast or a unicast IPv4 address); repeatable",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per server per line")
    parser.set_defaults(handler=main)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {text!r}")
    return value


def main(args: argparse.Namespace) -> int:
    ignored: collections.Counter[str] = collections.Counter()
    try:
        servers = discover(args.address, args.port, args.timeout, ignored)
    except DiscoveryError as exc:
        return fail(str(exc))
    for line in ignored_lines(ignored):
        print(line, file=sys.stderr)
    if not servers:
        return fail(
            f"no server answered the discovery probe on UDP port {args.port} within "
            f"{args.timeout:g} s (rexecd answers only with --announce)",
            status=1,
        )
    for server in servers:
        if args.json:
            print(json.dumps(server.to_json(), ensure_ascii=False, separators=(",", ":")))
        else:
            versions = ",".join(str(v) for v in server.announcement.protocol)
            tls = "tls" if server.tls else "plain"
            print(f"{server.address!s:24} {_printable(server.name):32} {tls:5} protocol {versions}")
    return 0


def _printable(text: str) -> str:
    # decode_answer already refuses names with control characters; keep it so.
    return "".join(ch if ch.isprintable() else "?" for ch in text)
