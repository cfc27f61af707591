"""``Connection.send_header``: a frame's header, checked and recorded as
``send`` would, for a body the caller writes itself right after (a sender's
way of not copying a megabyte body into a frame)."""

from __future__ import annotations

import pytest

from rexec.protocol import (
    Connection,
    ErrorCode,
    Limits,
    LocalProtocolError,
    Role,
    Run,
    Started,
    Stdin,
    Stdout,
)

from .helpers import deliver, open_pair, receive_chunks


def _running(limits: Limits | None = None) -> tuple[Connection, Connection]:
    client, server = open_pair(limits)
    deliver(client, server, Run(id=1, argv=["cat"], stdin=True))
    deliver(server, client, Started(id=1, pid=7))
    return client, server


def test_header_then_body_is_the_frame_send_makes() -> None:
    body = bytes(range(256)) * 300
    message = Stdout.with_data(1, body)
    client, server = _running()
    _, twin = _running()
    header = server.send_header(message)
    assert header + body == twin.send(message)
    assert receive_chunks(client, [header, body[:1000], body[1000:]]) == [message]


def test_header_is_recorded_as_the_frame_would_be() -> None:
    # A client's stdin through send_header uses its credit, as send does.
    client, server = _running(Limits(stdin_window=100_000))
    client.send_header(Stdin(id=1, data_size=60_000))
    assert client.stdin_credit(1) == 40_000
    with pytest.raises(LocalProtocolError):
        client.send_header(Stdin(id=1, data_size=40_001))
    assert client.stdin_credit(1) == 40_000  # a refused header changes nothing


def test_body_above_the_peers_limit_is_refused() -> None:
    client, _ = _running(Limits(stdin_window=4 << 20, max_body=64 * 1024))
    with pytest.raises(LocalProtocolError) as info:
        client.send_header(Stdin(id=1, data_size=64 * 1024 + 1))
    assert info.value.code is ErrorCode.FRAME_BODY_TOO_LARGE
    assert client.stdin_credit(1) == 4 << 20


def test_not_during_the_handshake() -> None:
    # The handshake's transcript is made of whole frames.
    with pytest.raises(LocalProtocolError) as info:
        Connection(Role.CLIENT).send_header(Run(id=1, argv=["true"]))
    assert info.value.code is ErrorCode.INTERNAL
