"""Bulk output through the client library, byte-exact: many frames, both
streams, a reader that lags (the server's socket fills and the connection
pauses its own), odd read sizes, plain TCP and TLS.

The bytes are seeded random data written in uneven pieces, so a byte lost,
doubled or moved anywhere in the stream changes the digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import ssl
import sys
from typing import Any

import pytest
import trustme

from rexec_client import ClientConnection, connect

#: Writes ``SIZE`` seeded random bytes to stdout (seed 1) and as many to
#: stderr (seed 2) when asked, in pieces of uneven sizes.
WRITER = """
import random, sys
size, both = int(sys.argv[1]), sys.argv[2] == "both"
out, err = random.Random(1).randbytes(size), random.Random(2).randbytes(size)
steps = random.Random(3)
i = 0
while i < size:
    n = steps.choice((1, 4093, 65536, 65537, 300001, 1048576))
    sys.stdout.buffer.write(out[i:i + n]); sys.stdout.buffer.flush()
    if both:
        sys.stderr.buffer.write(err[i:i + n]); sys.stderr.buffer.flush()
    i += n
"""


def _digest(seed: int, size: int) -> str:
    return hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()


async def _drain(reader: Any, read_size: int, lag_first: int = 0) -> tuple[int, str]:
    """Read a stream to its end in ``read_size`` reads; the first
    ``lag_first`` bytes slowly (a short pause per read) so that the server's
    socket and the connection's buffer fill meanwhile."""
    digest = hashlib.sha256()
    got = 0
    while chunk := await reader.read(read_size):
        assert isinstance(chunk, bytes)
        digest.update(chunk)
        got += len(chunk)
        if got < lag_first:
            await asyncio.sleep(0.02)
    return got, digest.hexdigest()


def _run(host: str, port: int, key: bytes, body: Any, **kw: Any) -> Any:
    async def go() -> Any:
        async with await connect(host, port, key, **kw) as connection:
            return await asyncio.wait_for(body(connection), 120)

    return asyncio.run(go())


def _both_streams(size: int, read_size: int, lag_first: int = 0):
    async def body(connection: ClientConnection) -> tuple[Any, Any, int | None]:
        proc = await connection.start([sys.executable, "-c", WRITER, str(size), "both"])
        out, err = await asyncio.gather(
            _drain(proc.stdout, read_size, lag_first), _drain(proc.stderr, read_size)
        )
        return out, err, (await proc.wait()).exit_code

    return body


def test_many_frames_on_both_streams_arrive_byte_exact(server: Any) -> None:
    size = 24 * 1024 * 1024
    out, err, code = _run(server.host, server.port, server.key, _both_streams(size, 100_003))
    assert code == 0
    assert out == (size, _digest(1, size))
    assert err == (size, _digest(2, size))


def test_a_reader_that_lags_still_gets_every_byte_in_order(server: Any) -> None:
    # 4 MiB read slowly: the server's socket fills, so frames leave partly
    # through the transport's buffer, and the connection pauses its socket.
    size = 16 * 1024 * 1024
    out, err, code = _run(
        server.host, server.port, server.key, _both_streams(size, 65536, lag_first=4 << 20)
    )
    assert code == 0
    assert out == (size, _digest(1, size))
    assert err == (size, _digest(2, size))


@pytest.fixture
def tls_server(start_server: Any, tmp_path: Any) -> tuple[Any, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    server = start_server(
        "--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.pem")
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return server, context


def test_bulk_output_under_tls_arrives_byte_exact(tls_server: Any) -> None:
    server, context = tls_server
    size = 12 * 1024 * 1024
    out, err, code = _run(
        server.host, server.port, server.key, _both_streams(size, 1 << 20), ssl=context
    )
    assert code == 0
    assert out == (size, _digest(1, size))
    assert err == (size, _digest(2, size))
