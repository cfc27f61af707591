"""Small drivers shared by the protocol tests: feed bytes in chunks, and set up
two ``Connection`` objects that talk to each other. No sockets, no event loop."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import pytest
from budget import examples
from hypothesis import HealthCheck, settings

from rexec.protocol import (
    Auth,
    AuthOk,
    Connection,
    FrameDecoder,
    Hello,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Role,
    encode_frame,
    macs_match,
)

from .vectors import (
    HANDSHAKE_CLIENT_NONCE,
    HANDSHAKE_KEY,
    HANDSHAKE_SERVER_NAME,
    HANDSHAKE_SERVER_NONCE,
)

#: Hypothesis settings for this directory: bounded so the suite stays fast, no
#: example database (nothing written into the work tree), no deadline (a slow
#: CI machine must not turn into a flaky failure).
FAST = settings(
    max_examples=examples(150),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def new_decoder(limits: Limits | None = None) -> FrameDecoder:
    limits = limits or Limits()
    return FrameDecoder(max_header=limits.max_header, max_body=limits.max_body)


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates allowed)."""
    points = sorted({0, len(data), *(cut for cut in cuts if 0 <= cut <= len(data))})
    return [data[a:b] for a, b in pairwise(points)]


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def decode_chunks(decoder: FrameDecoder, chunks: Sequence[bytes]) -> list[object]:
    """Feed each chunk and drain the decoder after it, as a socket loop does."""
    out: list[object] = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (message := decoder.next_message()) is not None:
            out.append(message)
    return out


def receive_chunks(connection: Connection, chunks: Sequence[bytes]) -> list[object]:
    """The same for a Connection."""
    out: list[object] = []
    for chunk in chunks:
        connection.receive_data(chunk)
        while (event := connection.next_event()) is not None:
            out.append(event)
    return out


def deliver(sender: Connection, receiver: Connection, message: object) -> object:
    """``sender.send(message)``, hand the bytes to ``receiver``, return the one
    event it yields (and check it yields exactly one)."""
    events = receive_chunks(receiver, [sender.send(message)])  # type: ignore[arg-type]
    assert len(events) == 1, events
    return events[0]


def handshake(
    client: Connection, server: Connection, *, binding: bytes = b"", features: tuple[str, ...] = ()
) -> tuple[Hello, Auth, AuthOk]:
    """Run the protocol.md 3.1 handshake between two fresh connections, with
    the deterministic nonces and key, each side computing its mac over its
    own record of the transcript."""
    hello = Hello(
        versions=[3],
        features=list(features),
        nonce=HANDSHAKE_SERVER_NONCE,
        server=HANDSHAKE_SERVER_NAME,
        limits=server.announced_limits(),
    )
    assert deliver(server, client, hello) == hello
    auth = client.sign_auth(
        HANDSHAKE_KEY, nonce=HANDSHAKE_CLIENT_NONCE, binding=binding, features=features
    )
    assert deliver(client, server, auth) == auth
    assert macs_match(server.transcript(binding).client_mac(HANDSHAKE_KEY), auth.mac)
    auth_ok = AuthOk.with_mac(server.transcript(binding).server_mac(HANDSHAKE_KEY, auth.mac))
    assert deliver(server, client, auth_ok) == auth_ok
    assert macs_match(client.transcript(binding).server_mac(HANDSHAKE_KEY, auth.mac), auth_ok.mac)
    return hello, auth, auth_ok


def open_pair(server_limits: Limits | None = None) -> tuple[Connection, Connection]:
    """A client and a server Connection, handshake done, both OPEN."""
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER, limits=server_limits)
    handshake(client, server)
    return client, server


def pair_of(client: Connection, server: Connection, role: Role) -> tuple[Connection, Connection]:
    """(sender, receiver) for a message sent by ``role``."""
    return (client, server) if role is Role.CLIENT else (server, client)


def assert_refused_when_sent(sender: Connection, message: object, code: object) -> None:
    """``sender.send(message)`` raises LocalProtocolError with ``code`` (a bug
    on that side: nothing is sent)."""
    with pytest.raises(LocalProtocolError) as info:
        sender.send(message)  # type: ignore[arg-type]
    assert info.value.code is code


def assert_refused_when_received(receiver: Connection, message: object, code: object) -> None:
    """The bytes of ``message``, forged (as a broken peer would send them,
    bypassing its own checks), make ``receiver.next_event()`` raise
    RemoteProtocolError with ``code``."""
    receiver.receive_data(encode_frame(message))  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError) as info:
        receiver.next_event()
    assert info.value.code is code
