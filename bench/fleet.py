"""A fleet emulator: one process serving N rexec servers on distinct loopback
addresses, for measuring ``rexec batch`` at 1,000 or 10,000 servers.

    python bench/fleet.py --servers 10000
    {"hosts": "127.1.[0-39].[1-250]:40123", "key_file": "/tmp/fleet-…/key", ...}

The first line on stdout is one JSON object naming the targets in ``rexec
batch --hosts`` notation (``hosts``) and the shared key (``key_file``), plus
``port``, ``servers``, ``names`` (the node names the endpoints answer
``hostname`` with, as a node set), ``pid`` and, with ``--tls``,
``tls_ca``/``tls_server_name``. Then it serves until SIGTERM or SIGINT,
which end it cleanly (exit 0, its temporary key removed). SIGUSR1 prints a
line of counters (``{"stats": …}``: connections, commands, the most open or
running at once, CPU seconds).

Endpoint i (1-based) listens on 127.1.(i-1)//250.((i-1)%250+1) (``--base``
moves the /16), all on one port, and calls itself ``node%05d``. The whole
127.0.0.0/8 routes to the loopback interface on Linux, so no setup is needed;
each endpoint is one listening socket, so the emulator raises its open-file
limit (soft up to hard) and refuses to start, saying so, when the hard limit
is too low for N.

Every endpoint speaks protocol.md through ``rexec.protocol`` (see
``fleet_endpoint``) and answers a small command set without forking (see
``fleet_commands``), so 10,000 fit on one machine. Faults, by endpoint index
lists such as ``17,342`` or ``100-110``: ``--down`` (not listening:
connection refused), ``--drop`` (accepts, then drops the connection),
``--slow`` (says hello only after ``--slow-seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from fleet_endpoint import Behaviour, Endpoint, EndpointSession, Stats

from rexec.keyfile import KeyFileError, load_key

#: Endpoints per /24 of the base network (.1 to .250).
PER_ROW = 250
#: Rows of the base /16.
ROWS = 256
MAX_SERVERS = PER_ROW * ROWS
#: Descriptors kept free beyond one per endpoint (connections, files).
FD_MARGIN = 256
#: The name TLS certificates are issued for (``tls_server_name``).
TLS_NAME = "fleet.rexec.test"
LISTEN_BACKLOG = 128


class FleetError(Exception):
    """Why the fleet can't start (one line for a person)."""


def indices(text: str, count: int) -> set[int]:
    """``17,342,100-110`` as a set of 1-based endpoint numbers."""
    chosen: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise FleetError(
                f"bad endpoint list {text!r}: expected N or N-M, comma-separated"
            ) from None
        if not 1 <= low <= high <= count:
            raise FleetError(f"bad endpoint list {text!r}: numbers run from 1 to {count}")
        chosen.update(range(low, high + 1))
    return chosen


def address_of(base: ipaddress.IPv4Address, index: int) -> str:
    """The address of endpoint ``index`` (1-based)."""
    row, column = divmod(index - 1, PER_ROW)
    return str(base + row * 256 + column + 1)


def hosts_spec(base: ipaddress.IPv4Address, count: int, port: int) -> str:
    """The node set of the first ``count`` endpoints, as ``--hosts`` takes it."""
    prefix = ".".join(str(base).split(".")[:2])
    full_rows, rest = divmod(count, PER_ROW)
    parts = []
    if full_rows == 1:
        parts.append(f"{prefix}.0.[1-{PER_ROW}]:{port}")
    elif full_rows > 1:
        parts.append(f"{prefix}.[0-{full_rows - 1}].[1-{PER_ROW}]:{port}")
    if rest:
        last = f"[1-{rest}]" if rest > 1 else "1"
        parts.append(f"{prefix}.{full_rows}.{last}:{port}")
    return ",".join(parts)


def name_of(index: int, width: int) -> str:
    return f"node{index:0{width}d}"


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-file limit to the hard one; return it.

    Raises:
        FleetError: the hard limit is below ``needed``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise FleetError(
            f"{needed} open files are needed and the hard limit is {hard}: raise it "
            "(root: ulimit -Hn, or LimitNOFILE= in a unit) or serve fewer endpoints"
        )
    if soft == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and soft >= hard):
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def bind_all(addresses: list[str], port: int | None) -> tuple[int, list[socket.socket]]:
    """Listening sockets on one port for every address (a port free on all of
    them is found by trying, a bounded number of times)."""
    for _ in range(20 if port is None else 1):
        chosen = port if port is not None else random.randrange(20_000, 32_000)
        sockets: list[socket.socket] = []
        try:
            for address in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, chosen))
                sock.listen(LISTEN_BACKLOG)
                sock.setblocking(False)
            return chosen, sockets
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if port is not None:
                raise FleetError(f"cannot listen on port {port}: {exc.strerror}") from None
    raise FleetError("no port was free on every endpoint address")


def tls_context(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh CA-signed certificate for ``TLS_NAME``;
    returns it and the CA file clients trust."""
    import trustme  # a test dependency: pip install -e '.[test]'

    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_3  # as rexecd: the channel binding needs it
    ca.issue_cert(TLS_NAME).configure_cert(context)
    return context, ca_file


@dataclasses.dataclass
class Fleet:
    """The parsed options, and what serving them needs."""

    count: int
    base: ipaddress.IPv4Address
    port: int | None
    key_file: Path
    key: bytes
    down: set[int]
    drop: set[int]
    slow: set[int]
    slow_seconds: float
    tls: ssl.SSLContext | None
    tls_ca: Path | None

    def endpoint(self, index: int, width: int, stats: Stats) -> Endpoint:
        behaviour = Behaviour.NORMAL
        if index in self.drop:
            behaviour = Behaviour.DROP
        elif index in self.slow:
            behaviour = Behaviour.SLOW
        return Endpoint(name_of(index, width), self.key, stats, behaviour, self.slow_seconds)


async def serve(fleet: Fleet) -> None:
    loop = asyncio.get_running_loop()
    width = max(5, len(str(fleet.count)))
    listening = [i for i in range(1, fleet.count + 1) if i not in fleet.down]
    port, sockets = bind_all([address_of(fleet.base, i) for i in listening], fleet.port)
    stats = Stats()
    servers = []
    for index, sock in zip(listening, sockets, strict=True):
        endpoint = fleet.endpoint(index, width, stats)
        servers.append(
            await loop.create_server(
                lambda endpoint=endpoint: EndpointSession(endpoint),
                sock=sock,
                ssl=fleet.tls,
                backlog=LISTEN_BACKLOG,
            )
        )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: _print_stats(stats))
    first = {
        "hosts": hosts_spec(fleet.base, fleet.count, port),
        "key_file": str(fleet.key_file),
        "port": port,
        "servers": fleet.count,
        "names": f"node[{name_of(1, width)[4:]}-{name_of(fleet.count, width)[4:]}]",
        "pid": os.getpid(),
        "tls_ca": str(fleet.tls_ca) if fleet.tls_ca else None,
        "tls_server_name": TLS_NAME if fleet.tls else None,
    }
    print(json.dumps(first), flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    for session in list(stats.sessions):
        session.abort()
    _print_stats(stats)


def _print_stats(stats: Stats) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = dataclasses.asdict(stats.counts) | {
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "time": round(time.time(), 3),
    }
    print(json.dumps({"stats": record}), flush=True)


def parse(argv: list[str] | None, scratch: Path) -> Fleet:
    parser = argparse.ArgumentParser(
        description="Serve N emulated rexec servers on loopback addresses (see the docstring).",
    )
    parser.add_argument(
        "--servers",
        type=int,
        required=True,
        metavar="N",
        help=f"how many endpoints (1 to {MAX_SERVERS})",
    )
    parser.add_argument(
        "--base",
        default="127.1.0.0",
        metavar="ADDR",
        help="the /16 the endpoints live in (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="the port of every endpoint (default: one free on all)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="FILE",
        help="use this key (default: a fresh one in a temporary directory)",
    )
    parser.add_argument(
        "--down",
        default="",
        metavar="LIST",
        help="endpoints that do not listen (connection refused), e.g. 17,342",
    )
    parser.add_argument(
        "--drop", default="", metavar="LIST", help="endpoints that accept and drop every connection"
    )
    parser.add_argument(
        "--slow",
        default="",
        metavar="LIST",
        help="endpoints that say hello only after --slow-seconds",
    )
    parser.add_argument("--slow-seconds", type=float, default=5.0, metavar="S")
    parser.add_argument(
        "--tls",
        action="store_true",
        help=f"speak TLS (a fresh CA; the certificate names {TLS_NAME})",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.servers <= MAX_SERVERS:
        raise FleetError(f"--servers must be from 1 to {MAX_SERVERS}")
    try:
        base = ipaddress.IPv4Address(args.base)
    except ValueError:
        raise FleetError(f"--base {args.base!r} is not an IPv4 address") from None
    if base not in ipaddress.IPv4Network("127.0.0.0/8") or int(base) & 0xFFFF:
        raise FleetError("--base must be a /16 inside 127.0.0.0/8, such as 127.1.0.0")
    if args.key_file is not None:
        key_file = args.key_file
        key = load_key(key_file)
    else:
        key_file = scratch / "key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        key = load_key(key_file)
    context, ca_file = tls_context(scratch) if args.tls else (None, None)
    return Fleet(
        args.servers,
        base,
        args.port,
        key_file,
        key,
        indices(args.down, args.servers),
        indices(args.drop, args.servers),
        indices(args.slow, args.servers),
        args.slow_seconds,
        context,
        ca_file,
    )


def main(argv: list[str] | None = None) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="fleet-"))
    try:
        fleet = parse(argv, scratch)
        raise_fd_limit(fleet.count + FD_MARGIN)
        asyncio.run(serve(fleet))
    except (FleetError, KeyFileError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
