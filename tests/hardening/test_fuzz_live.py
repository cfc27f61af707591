"""Live-socket fuzzing: random and mutated frame streams sent to a real
``rexecd`` after authentication. The server may only answer with valid frames
(errors, or what a valid request in the stream asked for) and close; it never
crashes, never reports an internal error, and stays healthy."""

from __future__ import annotations

import socket
import time

import pytest
from budget import examples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from server.wire import Wire, raw_frame

from rexec.protocol import (
    PROTOCOL_MAX_BODY,
    PROTOCOL_MAX_HEADER,
    Cancel,
    Error,
    FrameDecoder,
    Ping,
    Run,
    Signal,
)

from .conftest import Daemon, healthy, open_wire


def frames_until_close(wire: Wire, within: float, sent: bytes) -> list:
    """Every frame the server sends until it closes, decoded without the
    client's state machine (the stream bypassed it); each must be valid."""
    decoder = FrameDecoder(max_header=PROTOCOL_MAX_HEADER, max_body=PROTOCOL_MAX_BODY)
    frames = []
    deadline = time.monotonic() + within
    while True:
        try:
            data = wire._recv(deadline - time.monotonic())
        except TimeoutError:
            pytest.fail(f"the connection did not end within {within} s; sent {sent[:80]!r}")
        if not data:
            break
        decoder.feed(data)
        while (message := decoder.next_message()) is not None:
            frames.append(message)
    assert not decoder.mid_frame, "the server's last frame was cut"
    for frame in frames:
        if isinstance(frame, Error):
            assert frame.code != "internal", frame
            assert len(frame.message) <= 200 and frame.message.isprintable()
    return frames


def data_frame(kind: str, command_id: int, body: bytes) -> bytes:
    return raw_frame({"type": kind, "data_size": len(body), "id": command_id}, body)


def valid_frames() -> list[bytes]:
    """A valid post-auth stream: harmless commands, stdin, signals, pings."""
    dump = lambda message: raw_frame(message.model_dump(mode="json"))  # noqa: E731
    return [
        dump(Ping(seq=1)),
        dump(Run(id=1, argv=["echo", "fuzz"])),
        dump(Run(id=2, argv=["cat"], stdin=True)),
        data_frame("stdin", 2, b"hello\x00\xff"),
        raw_frame({"type": "stdin_eof", "data_size": 0, "id": 2}),
        dump(Run(id=3, shell="exit 3", timeout=1.0)),
        dump(Signal(id=3, signal="SIGTERM")),
        dump(Cancel(id=1)),
        dump(Ping(seq=2)),
    ]


VALID = b"".join(valid_frames())


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    stream = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(
            st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate", "length"])
        )
        position = draw(st.integers(0, max(0, len(stream) - 1)))
        if operation == "flip" and stream:
            stream[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            stream[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del stream[position : position + draw(st.integers(1, 16))]
        elif operation == "truncate":
            del stream[position:]
        elif operation == "duplicate":
            stream += stream[position : position + draw(st.integers(1, 64))]
        else:  # a length prefix replaced by an extreme value
            stream[position : position + 4] = draw(
                st.sampled_from(
                    [
                        b"\x00\x00\x00\x00",
                        b"\xff\xff\xff\xff",
                        b"\x7f\xff\xff\xff",
                        b"\x00\x00\x01\x00",
                    ]
                )
            )
    return bytes(stream)


streams = st.one_of(st.binary(min_size=1, max_size=2048), mutated_streams())


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory):
    from .conftest import launch, stop

    server = launch(
        tmp_path_factory.mktemp("fuzz"), "--frame-timeout", "0.5", "--kill-grace", "0.2",
        "--auth-failures", "1000",
    )  # fmt: skip
    yield server
    stop(server)


@settings(
    max_examples=examples(1000),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(stream=streams)
# Found by this test: a half-close while `cat` waited for stdin kept the
# connection open for ever (the FIN now closes running commands' stdin).
@example(stream=b"".join(valid_frames()[:4]))
def test_fuzzed_stream_after_auth(fuzz_server: Daemon, stream: bytes) -> None:
    with open_wire(fuzz_server) as wire:
        try:
            wire.send_raw(stream)
            wire.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        frames_until_close(wire, 5, stream)
    assert fuzz_server.alive()


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(stream=st.binary(min_size=1, max_size=512))
def test_fuzzed_bytes_before_auth(fuzz_server: Daemon, stream: bytes) -> None:
    with open_wire(fuzz_server, auth=False) as wire:
        wire.read_hello(5)
        try:
            wire.send_raw(stream)
            wire.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        frames = frames_until_close(wire, 3, stream)
        assert all(isinstance(f, Error) and f.fatal for f in frames), frames


def test_server_is_healthy_after_fuzzing(fuzz_server: Daemon) -> None:
    assert fuzz_server.alive()
    assert healthy(fuzz_server)
    assert "Traceback" not in fuzz_server.stderr()
    # Every connection the fuzzers opened has been closed and audited.
    records = fuzz_server.audit_records()
    connects = sum(1 for r in records if r["event"] == "connect")
    deadline = time.monotonic() + 3
    while sum(1 for r in fuzz_server.audit_records() if r["event"] == "disconnect") < connects:
        assert time.monotonic() < deadline
        time.sleep(0.05)
