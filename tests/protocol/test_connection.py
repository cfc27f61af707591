"""Connection state machine: two Connection objects, one per role, talking
to each other through bytes only (protocol.md sections 3, 5, 6, 7, 8).

Every rule is checked from both ends: the side that tries to break it gets a
LocalProtocolError from ``send`` (a bug on that side; nothing is sent and its
state is unchanged), and the side that receives the same bytes, forged, gets a
RemoteProtocolError from ``next_event`` with the same code.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rexec.protocol import (
    Auth,
    AuthOk,
    Cancel,
    Connection,
    ConnectionState,
    Error,
    ErrorCode,
    Exit,
    Get,
    Hello,
    Limits,
    LocalProtocolError,
    Ping,
    Pong,
    Put,
    RemoteProtocolError,
    Resize,
    Role,
    Run,
    Signal,
    Started,
    Stderr,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
    encode_frame,
)

from .helpers import (
    FAST,
    assert_refused_when_received,
    assert_refused_when_sent,
    byte_by_byte,
    deliver,
    handshake,
    open_pair,
    pair_of,
    receive_chunks,
    split,
)
from .vectors import (
    AUTH,
    AUTH_OK,
    CLIENT_STREAM,
    HANDSHAKE_CLIENT_MAC,
    HANDSHAKE_CLIENT_NONCE,
    HANDSHAKE_SERVER_MAC,
    HELLO,
    PING,
    SERVER_STREAM,
    _frame,
)

UNEXPECTED = ErrorCode.PROTOCOL_UNEXPECTED
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
BAD_ID = ErrorCode.COMMAND_BAD_ID
WINDOW = ErrorCode.FLOW_WINDOW_EXCEEDED


def exit_ok(command_id: int) -> Exit:
    return Exit(id=command_id, exit_code=0, signal=None, duration=0.0)


# --- The handshake ------------------------------------------------------------------


def test_handshake_vectors_byte_for_byte() -> None:
    # protocol.md 3.1: the example handshake is exactly what two Connections
    # produce, and each side moves to OPEN at the right frame.
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    assert server.send(HELLO.message) == HELLO.wire  # type: ignore[arg-type]
    assert receive_chunks(client, byte_by_byte(HELLO.wire)) == [HELLO.message]
    assert client.server_limits == HELLO.message.limits  # type: ignore[attr-defined]
    assert client.send(AUTH.message) == AUTH.wire  # type: ignore[arg-type]
    assert receive_chunks(server, [AUTH.wire]) == [AUTH.message]
    assert (client.state, server.state) == (ConnectionState.HANDSHAKE,) * 2
    assert server.send(AUTH_OK.message) == AUTH_OK.wire  # type: ignore[arg-type]
    assert server.state is ConnectionState.OPEN  # from sending auth_ok
    assert client.state is ConnectionState.HANDSHAKE  # until it arrives
    assert receive_chunks(client, [AUTH_OK.wire]) == [AUTH_OK.message]
    assert client.state is ConnectionState.OPEN


def _hello() -> Hello:
    return HELLO.message  # type: ignore[return-value]


def _auth(version: int = 3, features: tuple[str, ...] = ()) -> Auth:
    unsigned = Auth.unsigned(version=version, nonce=HANDSHAKE_CLIENT_NONCE, features=features)
    return unsigned.signed(HANDSHAKE_CLIENT_MAC)


AUTH_OK_MESSAGE = AuthOk.with_mac(HANDSHAKE_SERVER_MAC)

# How far the handshake has gone before the offending frame.
Setup = Callable[[Connection, Connection], None]


def _nothing(client: Connection, server: Connection) -> None:
    pass


def _after_hello(client: Connection, server: Connection) -> None:
    deliver(server, client, _hello())


def _after_auth(client: Connection, server: Connection) -> None:
    _after_hello(client, server)
    deliver(client, server, _auth())


def _after_handshake(client: Connection, server: Connection) -> None:
    handshake(client, server)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    setup: Setup
    sender: Role
    message: object
    code: ErrorCode
    limits: Limits | None = None


def _run(command_id: int, **kwargs: object) -> Run:
    return Run(id=command_id, shell="true", **kwargs)  # type: ignore[arg-type]


def _steps(*steps: tuple[Role, object], limits: Limits | None = None) -> Setup:
    """A setup that does the handshake, then delivers each (sender, message)."""

    def setup(client: Connection, server: Connection) -> None:
        handshake(client, server)
        for role, message in steps:
            deliver(*pair_of(client, server, role), message)

    return setup


C, S = Role.CLIENT, Role.SERVER
RUN_1 = (C, _run(1))
RUN_1_STDIN = (C, _run(1, stdin=True))
STARTED_1 = (S, Started(id=1, pid=100))
SMALL_WINDOW = Limits(stdin_window=8)

CASES = [
    # [handshake.order]
    Case("run_before_hello", _nothing, C, _run(1), UNEXPECTED),
    Case("auth_before_hello", _nothing, C, _auth(), UNEXPECTED),
    Case("run_before_auth", _after_hello, C, _run(1), UNEXPECTED),
    Case("ping_before_auth", _after_hello, C, Ping(seq=1), UNEXPECTED),
    Case("stdin_before_auth", _after_hello, C, Stdin.with_data(1, b"x"), UNEXPECTED),
    Case("nonfatal_error_in_handshake", _after_hello, C,
         Error(code="internal", message="m", fatal=False), UNEXPECTED),
    Case("auth_ok_before_hello", _nothing, S, AUTH_OK_MESSAGE, UNEXPECTED),
    Case("started_before_hello", _nothing, S, Started(id=1, pid=1), UNEXPECTED),
    Case("auth_ok_before_auth", _after_hello, S, AUTH_OK_MESSAGE, UNEXPECTED),
    Case("second_hello", _after_hello, S, _hello(), UNEXPECTED),
    Case("started_before_auth_ok", _after_auth, S, Started(id=1, pid=1), UNEXPECTED),
    Case("run_before_auth_ok", _after_auth, C, _run(1), UNEXPECTED),
    Case("second_auth", _after_auth, C, _auth(), UNEXPECTED),
    # Server-only types from a client, and the reverse.
    Case("hello_from_client", _nothing, C, _hello(), UNEXPECTED),
    Case("auth_from_server", _after_hello, S, _auth(), UNEXPECTED),
    Case("hello_after_handshake", _after_handshake, S, _hello(), UNEXPECTED),
    Case("auth_after_handshake", _after_handshake, C, _auth(), UNEXPECTED),
    Case("auth_ok_after_handshake", _after_handshake, S, AUTH_OK_MESSAGE, UNEXPECTED),
    Case("started_from_client", _steps(RUN_1), C, Started(id=1, pid=1), UNEXPECTED),
    Case("stdout_from_client", _steps(RUN_1), C, Stdout.with_data(1, b"x"), UNEXPECTED),
    Case("exit_from_client", _steps(RUN_1), C, exit_ok(1), UNEXPECTED),
    Case("credit_from_client", _steps(RUN_1), C, StdinCredit(id=1, bytes=1), UNEXPECTED),
    Case("run_from_server", _after_handshake, S, _run(1), UNEXPECTED),
    Case("stdin_from_server", _steps(RUN_1_STDIN), S, Stdin.with_data(1, b"x"), UNEXPECTED),
    Case("signal_from_server", _steps(RUN_1), S, Signal(id=1, signal="SIGINT"), UNEXPECTED),
    # [handshake.version]
    Case("auth_version_not_offered", _after_hello, C, _auth(version=1),
         ErrorCode.VERSION_UNSUPPORTED),
    Case("auth_future_version", _after_hello, C, _auth(version=4),
         ErrorCode.VERSION_UNSUPPORTED),
    # [handshake.features]
    Case("auth_feature_not_offered", _after_hello, C, _auth(features=("x-nope",)),
         ErrorCode.FEATURE_UNSUPPORTED),
    # [command.id.increasing], [command.id.unknown]
    Case("run_id_repeated", _steps((C, _run(5))), C, _run(5), BAD_ID),
    Case("run_id_decreasing", _steps((C, _run(5))), C, _run(3), BAD_ID),
    Case("cancel_before_any_run", _after_handshake, C, Cancel(id=0), BAD_ID),
    Case("stdin_future_id", _steps(RUN_1_STDIN), C, Stdin.with_data(2, b"x"), BAD_ID),
    Case("signal_future_id", _steps(RUN_1), C, Signal(id=9, signal="SIGTERM"), BAD_ID),
    Case("started_future_id", _steps(RUN_1), S, Started(id=2, pid=1), BAD_ID),
    Case("error_future_id", _steps(RUN_1), S,
         Error(code="busy", message="m", fatal=False, id=2), BAD_ID),
    # [stdin.credit]
    Case("stdin_over_window", _steps(RUN_1_STDIN, limits=SMALL_WINDOW), C,
         Stdin.with_data(1, b"x" * 9), WINDOW, SMALL_WINDOW),
    Case("stdin_over_remaining_credit",
         _steps(RUN_1_STDIN, (C, Stdin.with_data(1, b"x" * 8)), limits=SMALL_WINDOW), C,
         Stdin.with_data(1, b"x"), WINDOW, SMALL_WINDOW),
    Case("stdin_over_granted_credit",
         _steps(RUN_1_STDIN, (C, Stdin.with_data(1, b"x" * 8)), (S, StdinCredit(id=1, bytes=3)),
                limits=SMALL_WINDOW), C,
         Stdin.with_data(1, b"x" * 4), WINDOW, SMALL_WINDOW),
    # [command.started.first]
    Case("exit_before_started", _steps(RUN_1), S, exit_ok(1), UNEXPECTED),
    Case("stdout_before_started", _steps(RUN_1), S, Stdout.with_data(1, b"x"), UNEXPECTED),
    Case("stderr_before_started", _steps(RUN_1), S, Stderr.with_data(1, b"x"), UNEXPECTED),
    Case("started_twice", _steps(RUN_1, STARTED_1), S, Started(id=1, pid=100), UNEXPECTED),
    # [command.terminal.one]: nothing for an id after its terminal frame, and a
    # started command ends with exit, not with an error.
    Case("exit_twice", _steps(RUN_1, STARTED_1, (S, exit_ok(1))), S, exit_ok(1), UNEXPECTED),
    Case("stdout_after_exit", _steps(RUN_1, STARTED_1, (S, exit_ok(1))), S,
         Stdout.with_data(1, b"x"), UNEXPECTED),
    Case("credit_after_exit", _steps(RUN_1_STDIN, STARTED_1, (S, exit_ok(1))), S,
         StdinCredit(id=1, bytes=1), UNEXPECTED),
    Case("started_after_error", _steps(RUN_1, (S, Error(code="busy", message="m", fatal=False,
                                                        id=1))),
         S, Started(id=1, pid=1), UNEXPECTED),
    Case("error_after_error", _steps(RUN_1, (S, Error(code="busy", message="m", fatal=False,
                                                      id=1))),
         S, Error(code="busy", message="m", fatal=False, id=1), UNEXPECTED),
    Case("error_for_started_command", _steps(RUN_1, STARTED_1), S,
         Error(code="spawn.failed", message="m", fatal=False, id=1), UNEXPECTED),
    # [error.fatal.close]: nothing after a fatal error, in either direction.
    Case("ping_after_fatal_from_server",
         _steps((S, Error(code="internal", message="m", fatal=True))), S, Ping(seq=1),
         UNEXPECTED),
    Case("run_after_fatal_from_client",
         _steps((C, Error(code="internal", message="m", fatal=True))), C, _run(1), UNEXPECTED),
    Case("run_after_fatal_from_server",
         _steps((S, Error(code="server.shutting_down", message="m", fatal=True))), C, _run(1),
         UNEXPECTED),
]  # fmt: skip


# [command.frames.dropped]: frames a client must not send but a server drops
# rather than failing the connection, whether the command is running or has
# ended, so that the outcome can't depend on timing. Each: the steps after the
# handshake, then the frame.
DROPPED: list[tuple[str, tuple[tuple[Role, object], ...], object]] = [
    ("stdin_not_requested", (RUN_1,), Stdin.with_data(1, b"x")),
    ("stdin_eof_not_requested", (RUN_1,), StdinEof(id=1)),
    ("stdin_after_eof", (RUN_1_STDIN, (C, StdinEof(id=1))), Stdin.with_data(1, b"x")),
    ("stdin_eof_twice", (RUN_1_STDIN, (C, StdinEof(id=1))), StdinEof(id=1)),
    ("signal_for_put", ((C, Put(id=1, path="f", size=0, sha256=EMPTY_SHA256)),),
     Signal(id=1, signal="SIGINT")),
    ("resize_for_get", ((C, Get(id=1, path="f")),), Resize(id=1, rows=1, cols=1)),
    ("signal_for_get", ((C, Get(id=1, path="f")),), Signal(id=1, signal="SIGKILL")),
    ("stdin_for_get", ((C, Get(id=1, path="f")),), Stdin.with_data(1, b"x")),
    ("stdin_eof_for_get", ((C, Get(id=1, path="f")),), StdinEof(id=1)),
    ("put_stdin_after_eof", ((C, Put(id=1, path="f", size=0, sha256=EMPTY_SHA256)),
                             (C, StdinEof(id=1))), Stdin.with_data(1, b"x")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "steps", "frame"), DROPPED, ids=[d[0] for d in DROPPED])
def test_dropped_frame_is_refused_locally(
    name: str, steps: tuple[tuple[Role, object], ...], frame: object
) -> None:
    client, server = open_pair()
    for role, message in steps:
        deliver(*pair_of(client, server, role), message)
    with pytest.raises(LocalProtocolError) as info:
        client.send(frame)  # type: ignore[arg-type]
    assert info.value.code is UNEXPECTED


@pytest.mark.parametrize("ended", [False, True], ids=["running", "ended"])
@pytest.mark.parametrize(("name", "steps", "frame"), DROPPED, ids=[d[0] for d in DROPPED])
def test_dropped_frame_is_dropped_whatever_the_timing(
    name: str, steps: tuple[tuple[Role, object], ...], frame: object, ended: bool
) -> None:
    client, server = open_pair()
    for role, message in steps:
        deliver(*pair_of(client, server, role), message)
    if ended:  # the server ends the command before the forged frame arrives
        server.send(Error(code="busy", message="m", fatal=False, id=1))
        assert not server.is_active(1)
    server.receive_data(encode_frame(frame) + encode_frame(Ping(seq=5)))  # type: ignore[arg-type]
    assert server.next_event() == Ping(seq=5)
    assert server.state is ConnectionState.OPEN


def _setup(case: Case) -> tuple[Connection, Connection]:
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER, limits=case.limits)
    case.setup(client, server)
    return client, server


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_local_violation_raises_local_error(case: Case) -> None:
    sender, _ = pair_of(*_setup(case), case.sender)
    assert_refused_when_sent(sender, case.message, case.code)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_remote_violation_raises_remote_error(case: Case) -> None:
    _, receiver = pair_of(*_setup(case), case.sender)
    assert_refused_when_received(receiver, case.message, case.code)


def test_case_names_are_unique() -> None:
    assert len({case.name for case in CASES}) == len(CASES)


def test_failed_send_leaves_state_unchanged() -> None:
    # A refused stdin must not consume credit, a refused run must not burn its
    # id: the caller can go on as if it had never tried.
    client, server = open_pair(Limits(stdin_window=8))
    deliver(client, server, _run(1, stdin=True))
    with pytest.raises(LocalProtocolError):
        client.send(Stdin.with_data(1, b"x" * 9))
    assert client.stdin_credit(1) == 8
    assert deliver(client, server, Stdin.with_data(1, b"x" * 8)) == Stdin.with_data(1, b"x" * 8)
    with pytest.raises(LocalProtocolError):
        client.send(Run(id=1, shell="true"))
    assert client.last_command_id == 1


def test_failed_encode_leaves_state_unchanged() -> None:
    # A data message whose data_size lies is refused before it is recorded.
    client, server = open_pair(Limits(stdin_window=8))
    deliver(client, server, _run(1, stdin=True))
    with pytest.raises(LocalProtocolError) as info:
        client.send(Stdin(id=1, data_size=5))
    assert info.value.code is ErrorCode.INTERNAL
    assert client.stdin_credit(1) == 8


# --- Fatal errors and the end of the stream ------------------------------------------


@pytest.mark.parametrize("sender", [C, S])
def test_fatal_error_closes_both_sides(sender: Role) -> None:
    client, server = open_pair()
    deliver(client, server, _run(1))
    fatal = Error(code="internal", message="m", fatal=True, id=None)
    source, sink = pair_of(client, server, sender)
    assert deliver(source, sink, fatal) == fatal
    assert (client.state, server.state) == (ConnectionState.CLOSED,) * 2


@pytest.mark.parametrize("sender", [C, S])
def test_fatal_error_is_legal_during_handshake(sender: Role) -> None:
    # auth.failed, auth.timeout, version.unsupported: sent before auth_ok.
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    fatal = Error(code="auth.failed", message="authentication failed", fatal=True)
    source, sink = pair_of(client, server, sender)
    assert deliver(source, sink, fatal) == fatal
    assert sink.state is ConnectionState.CLOSED


def test_server_half_close_keeps_commands_going() -> None:
    # [close.client.eof]: the client's EOF between frames is a half-close; the
    # server still sends its commands' output and exit.
    client, server = open_pair()
    deliver(client, server, _run(1, stdin=True))
    deliver(server, client, Started(id=1, pid=7))
    server.receive_data(b"")
    assert server.next_event() is None
    assert server.state is ConnectionState.OPEN and server.is_active(1)
    assert deliver(server, client, Stdout.with_data(1, b"late")) == Stdout.with_data(1, b"late")
    deliver(server, client, exit_ok(1))
    assert server.active_commands == 0 and client.active_commands == 0


def test_client_sees_server_eof_as_the_end() -> None:
    client, server = open_pair()
    deliver(client, server, _run(1))
    client.receive_data(b"")
    assert client.state is ConnectionState.CLOSED
    assert not client.is_active(1)


@pytest.mark.parametrize("role", [C, S])
@pytest.mark.parametrize("cut", [1, 3, 4, 10, len(PING.wire) - 1])
def test_eof_inside_a_frame_is_truncation(role: Role, cut: int) -> None:
    # [frame.eof.truncated]: never a message; the connection is over.
    client, server = open_pair()
    receiver = server if role is S else client
    receiver.receive_data(PING.wire[:cut])
    assert receiver.next_event() is None
    with pytest.raises(RemoteProtocolError) as info:
        receiver.receive_data(b"")
    assert info.value.code is ErrorCode.FRAME_TRUNCATED
    assert receiver.state is ConnectionState.CLOSED


def test_eof_inside_a_body_is_truncation() -> None:
    client, server = open_pair()
    deliver(client, server, _run(1))
    deliver(server, client, Started(id=1, pid=7))
    client.receive_data(server.send(Stdout.with_data(1, b"abcdef"))[:-1])
    assert client.next_event() is None
    with pytest.raises(RemoteProtocolError) as info:
        client.receive_data(b"")
    assert info.value.code is ErrorCode.FRAME_TRUNCATED


# --- Header caps: before and after authentication ------------------------------------


def _length(n: int) -> bytes:
    return struct.pack("<i", n)


@pytest.mark.parametrize("role", [C, S])
def test_pre_auth_header_cap(role: Role) -> None:
    # [frame.length.limit] with section 7: 4 KiB until authenticated. Checked
    # on the 4 length bytes alone.
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    if role is S:
        server.send(_hello())  # the server now awaits auth
    receiver = server if role is S else client
    receiver.receive_data(_length(4096))
    assert receiver.next_event() is None  # exactly the cap: wait for the header
    fresh = Connection(role)
    if role is S:
        fresh.send(_hello())
    fresh.receive_data(_length(4097))
    with pytest.raises(RemoteProtocolError) as info:
        fresh.next_event()
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE


@pytest.mark.parametrize("role", [C, S])
def test_post_auth_header_cap(role: Role) -> None:
    client, server = open_pair()
    receiver = server if role is S else client
    receiver.receive_data(_length(65536))
    assert receiver.next_event() is None
    client, server = open_pair()
    receiver = server if role is S else client
    receiver.receive_data(_length(65537))
    with pytest.raises(RemoteProtocolError) as info:
        receiver.next_event()
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE


def test_header_cap_switches_exactly_at_auth_ok() -> None:
    # A frame pipelined right behind auth_ok in the same chunk is judged by
    # the post-auth cap: the switch happens when auth_ok is processed.
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    deliver(server, client, _hello())
    deliver(client, server, _auth())
    padded_ping = _frame(b'{"type":"ping","seq":1}' + b" " * 5000)
    client.receive_data(server.send(AUTH_OK_MESSAGE) + padded_ping)
    assert client.next_event() == AUTH_OK_MESSAGE
    assert client.next_event() == Ping(seq=1)


def test_server_announced_limits_apply() -> None:
    limits = Limits(max_header=8192, pre_auth_max_header=1024, max_body=100, stdin_window=50)
    client, server = open_pair(limits)
    assert client.server_limits == server.announced_limits()
    # Body cap on receipt, before the body.
    deliver(client, server, _run(1, stdin=True))
    server.receive_data(_frame(b'{"type":"stdin","id":1,"data_size":101}'))
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.FRAME_BODY_TOO_LARGE


def test_client_will_not_send_over_announced_limits() -> None:
    # [limits.announced]: a client MUST NOT exceed the limits in hello; it is
    # refused locally, with nothing recorded, rather than killing the connection.
    limits = Limits(max_header=1024, pre_auth_max_header=1024, max_body=100, stdin_window=1000)
    client, server = open_pair(limits)
    with pytest.raises(LocalProtocolError) as info:
        client.send(Run(id=1, shell="true", env={"BIG": "x" * 1024}))
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert client.last_command_id == -1
    deliver(client, server, _run(1, stdin=True))
    with pytest.raises(LocalProtocolError) as info:
        client.send(Stdin.with_data(1, b"x" * 101))
    assert info.value.code is ErrorCode.FRAME_BODY_TOO_LARGE
    assert client.stdin_credit(1) == 1000


# --- Commands ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "late",
    [
        Stdin.with_data(1, b"late"),
        StdinEof(id=1),
        Signal(id=1, signal="SIGINT"),
        Cancel(id=1),
        Resize(id=1, rows=10, cols=10),
    ],
    ids=lambda m: m.type,
)
def test_client_frame_crossing_the_exit_is_dropped(late: object) -> None:
    # [command.id.unknown]: the client sent it before the exit reached it; the
    # server drops it silently and carries on.
    client, server = open_pair()
    deliver(client, server, _run(1, stdin=True))
    deliver(server, client, Started(id=1, pid=7))
    exit_bytes = server.send(exit_ok(1))
    late_bytes = client.send(late)  # type: ignore[arg-type]  # client hasn't seen the exit yet
    server.receive_data(late_bytes + client.send(Ping(seq=3)))
    assert server.next_event() == Ping(seq=3)  # the late frame vanished
    assert receive_chunks(client, [exit_bytes]) == [exit_ok(1)]
    # Having seen the exit, the client itself may not speak of the command.
    with pytest.raises(LocalProtocolError):
        client.send(late)  # type: ignore[arg-type]


def test_command_scoped_error_ends_only_its_command() -> None:
    client, server = open_pair()
    deliver(client, server, _run(1))
    deliver(client, server, _run(2))
    refused = Error(code="busy", message="too many commands", fatal=False, id=2)
    assert deliver(server, client, refused) == refused
    assert (client.is_active(1), client.is_active(2)) == (True, False)
    assert (server.is_active(1), server.is_active(2)) == (True, False)
    assert client.state is ConnectionState.OPEN
    # The id stays used: a new run must go higher.
    with pytest.raises(LocalProtocolError):
        client.send(_run(2))
    deliver(client, server, _run(3))


def test_connection_level_messages_after_handshake() -> None:
    client, server = open_pair()
    for sender in (C, S):
        source, sink = pair_of(client, server, sender)
        assert deliver(source, sink, Ping(seq=1)) == Ping(seq=1)
        assert deliver(sink, source, Pong(seq=1)) == Pong(seq=1)
        warning = Error(code="server.shutting_down", message="soon", fatal=False)
        assert deliver(source, sink, warning) == warning
    assert (client.state, server.state) == (ConnectionState.OPEN,) * 2


def test_stdin_credit_accounting() -> None:
    # [stdin.credit]: the window, minus each stdin, plus each grant; both
    # sides agree at every step.
    client, server = open_pair(Limits(stdin_window=10))
    deliver(client, server, _run(4, stdin=True))
    assert client.stdin_credit(4) == server.stdin_credit(4) == 10
    deliver(client, server, Stdin.with_data(4, b"123456"))  # before started: allowed
    deliver(client, server, Stdin.with_data(4, b""))  # an empty body costs nothing
    deliver(client, server, Stdin.with_data(4, b"7890"))
    assert client.stdin_credit(4) == server.stdin_credit(4) == 0
    deliver(server, client, StdinCredit(id=4, bytes=5))
    deliver(server, client, StdinCredit(id=4, bytes=3))  # grants add up
    assert client.stdin_credit(4) == server.stdin_credit(4) == 8
    deliver(client, server, Stdin.with_data(4, b"x" * 8))
    assert client.stdin_credit(4) == 0
    deliver(client, server, StdinEof(id=4))
    assert client.stdin_credit(4) == 0  # closed: no credit, whatever is granted
    deliver(server, client, StdinCredit(id=4, bytes=1))
    assert client.stdin_credit(4) == 0


def test_ids_may_skip_and_run_concurrently() -> None:
    client, server = open_pair()
    for command_id in (0, 7, 2**53 - 1):
        deliver(client, server, Run(id=command_id, argv=["true"]))
    assert server.active_commands == 3 and server.last_command_id == 2**53 - 1
    for command_id in (7, 0, 2**53 - 1):  # any order of completion
        deliver(server, client, Started(id=command_id, pid=1))
        deliver(server, client, exit_ok(command_id))
    assert client.active_commands == server.active_commands == 0


# --- Whole conversations, in any chunking -------------------------------------------------


def _conversation(cuts_to_server: list[int], cuts_to_client: list[int]) -> None:
    client, server = open_pair()
    to_server = b"".join(client.send(v.message) for v in CLIENT_STREAM[1:])  # type: ignore[arg-type]
    assert to_server == b"".join(v.wire for v in CLIENT_STREAM[1:])
    received = receive_chunks(server, split(to_server, cuts_to_server))
    assert received == [v.message for v in CLIENT_STREAM[1:]]
    to_client = b"".join(server.send(v.message) for v in SERVER_STREAM[2:])  # type: ignore[arg-type]
    assert to_client == b"".join(v.wire for v in SERVER_STREAM[2:])
    received = receive_chunks(client, split(to_client, cuts_to_client))
    assert received == [v.message for v in SERVER_STREAM[2:]]
    # Both commands have ended (2 by exit, 5 by error), on both sides.
    assert client.active_commands == server.active_commands == 0


def test_conversation_whole() -> None:
    _conversation([], [])


def test_conversation_byte_by_byte() -> None:
    _conversation(list(range(2000)), list(range(2000)))


@FAST
@given(
    st.lists(st.integers(min_value=0, max_value=1000), max_size=10),
    st.lists(st.integers(min_value=0, max_value=1000), max_size=10),
)
def test_conversation_at_random_cuts(to_server: list[int], to_client: list[int]) -> None:
    _conversation(to_server, to_client)


# --- The error state ---------------------------------------------------------------------


@pytest.mark.parametrize("role", [C, S])
def test_after_a_remote_error_the_connection_goes_no_further(role: Role) -> None:
    # Like h11's ERROR: once the peer has broken the protocol, nothing more
    # is read (not even valid frames behind the bad one), every call raises
    # the same error, and the only thing left to send is a fatal error.
    client, server = open_pair()
    receiver = server if role is S else client
    receiver.receive_data(_frame(b'{"type":"ping","seq":-1}') + PING.wire)
    with pytest.raises(RemoteProtocolError) as first:
        receiver.next_event()
    assert receiver.state is ConnectionState.ERROR
    receiver.receive_data(PING.wire)  # discarded
    with pytest.raises(RemoteProtocolError) as again:
        receiver.next_event()
    assert again.value is first.value and first.value.code is ErrorCode.HEADER_INVALID
    with pytest.raises(LocalProtocolError):
        receiver.send(Ping(seq=1))
    assert not receiver.can_send
    fatal = Error(code="header.invalid", message="m", fatal=True)
    assert receiver.send(fatal) == encode_frame(fatal)
    assert receiver.state is ConnectionState.CLOSED


def test_a_state_error_also_stops_the_connection() -> None:
    client, server = open_pair()
    server.receive_data(encode_frame(Cancel(id=4)) + PING.wire)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is BAD_ID
    with pytest.raises(RemoteProtocolError):
        server.next_event()  # the ping behind it is never handed out


def test_a_local_error_changes_nothing() -> None:
    # A refused send is this side's problem: the connection goes on.
    client, server = open_pair()
    with pytest.raises(LocalProtocolError):
        client.send(Cancel(id=3))
    assert client.state is ConnectionState.OPEN
    assert deliver(client, server, Ping(seq=2)) == Ping(seq=2)


# --- Versions and features -----------------------------------------------------------------

V1_AUTH = _frame(
    b'{"type":"auth","data_size":0,"version":1,"nonce":"' + b"b" * 64 + b'",'
    b'"mac":"' + b"e" * 64 + b'"}'
)


@pytest.mark.parametrize(
    "frame",
    [
        V1_AUTH,
        _frame(b'{"type":"auth","version":7,"whatever":{"new":"shape"}}'),
        _frame(b'{"type":"auth","version":2,"data_size":32,"nonce":"x"}', b"m" * 32),
    ],
    ids=["version_1", "version_7_other_shape", "version_2"],
)
def test_auth_of_another_version_is_version_unsupported(frame: bytes) -> None:
    # [handshake.version]: whatever the shape of another version's auth, the
    # answer is version.unsupported, not a schema error.
    server = Connection(Role.SERVER)
    server.send(_hello())
    server.receive_data(frame)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.VERSION_UNSUPPORTED


def test_malformed_auth_of_this_version_is_a_schema_error() -> None:
    server = Connection(Role.SERVER)
    server.send(_hello())
    server.receive_data(_frame(b'{"type":"auth","version":3,"data_size":32,"nonce":"x"}'))
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.HEADER_INVALID


def test_features_offered_and_chosen() -> None:
    # [handshake.features]: the client picks among what hello offered; both
    # sides then know the same set.
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    handshake(client, server, features=("x-a", "x-b"))
    assert client.features == server.features == frozenset({"x-a", "x-b"})
    assert client.version == server.version == 3


def test_client_refuses_to_sign_without_a_common_version() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    deliver(server, client, Hello(versions=[1, 2], nonce="aa" * 32, server="s",
                                  limits=server.announced_limits()))  # fmt: skip
    with pytest.raises(LocalProtocolError) as info:
        client.sign_auth(bytes(32), nonce="bb" * 32)
    assert info.value.code is ErrorCode.VERSION_UNSUPPORTED


# --- Half-close ------------------------------------------------------------------------------


def test_half_closed_client_sends_nothing_more() -> None:
    # [message.ping.answer] with [close.client.eof]: after its FIN a client
    # can't answer a ping; the server may still send everything.
    client, server = open_pair()
    deliver(client, server, _run(1))
    client.send_eof()
    server.receive_data(b"")
    assert not client.can_send
    assert deliver(server, client, Ping(seq=9)) == Ping(seq=9)
    with pytest.raises(LocalProtocolError):
        client.send(Pong(seq=9))
    deliver(server, client, Started(id=1, pid=3))
    assert deliver(server, client, exit_ok(1)) == exit_ok(1)


def test_a_server_does_not_half_close() -> None:
    with pytest.raises(LocalProtocolError):
        Connection(Role.SERVER).send_eof()


# --- What protocol.md settles for an implementer who asked ---------------------------


@pytest.mark.parametrize("version", [0, 70000])
def test_an_integer_version_not_offered_is_unsupported_whatever_its_value(version: int) -> None:
    # [handshake.version]: an integer not offered, in range or not.
    server = Connection(Role.SERVER)
    server.send(_hello())
    header = b'{"type":"auth","version":%d,"data_size":32,"nonce":"%s"}' % (version, b"0" * 64)
    server.receive_data(_frame(header, b"m" * 32))
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.VERSION_UNSUPPORTED


@pytest.mark.parametrize(
    "version", [b'"2"', b"2.0", b"null", None], ids=["str", "float", "null", "missing"]
)
def test_a_version_that_is_not_an_integer_is_a_schema_error(version: bytes | None) -> None:
    # [handshake.version]: missing or not an integer is header.invalid.
    server = Connection(Role.SERVER)
    server.send(_hello())
    member = b"" if version is None else b'"version":' + version + b","
    header = b'{"type":"auth",%s"data_size":32,"nonce":"%s"}' % (member, b"0" * 64)
    server.receive_data(_frame(header, b"m" * 32))
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.HEADER_INVALID


@pytest.mark.parametrize(
    "header",
    [b'{"type":"run","id":1,"argv":["true"],"env":null}',
     b'{"type":"run","id":1,"argv":["true"],"stdin":null}',
     b'{"type":"ping","seq":1,"data_size":null}'],
    ids=["env", "stdin", "data_size"],
)  # fmt: skip
def test_null_is_legal_only_where_the_table_says_or_null(header: bytes) -> None:
    # Section 4: a member that may be omitted still does not take null.
    client, server = open_pair()
    server.receive_data(_frame(header))
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code is ErrorCode.HEADER_INVALID


def test_an_ignored_member_is_not_checked_against_ranges_or_nul() -> None:
    # [frame.header.schema]: what an extensible object ignores is not read.
    client, server = open_pair()
    error = b'{"type":"error","code":"x.y","message":"m","fatal":false,"a":1e999,"b":"\\u0000"}'
    server.receive_data(_frame(error) + encode_frame(Ping(seq=3)))
    events = [server.next_event(), server.next_event()]
    assert events[1] == Ping(seq=3)
    assert server.state is ConnectionState.OPEN


def test_a_pong_that_answers_no_ping_is_dropped() -> None:
    client, server = open_pair()
    server.receive_data(encode_frame(Pong(seq=99)) + encode_frame(Ping(seq=4)))
    events = [server.next_event(), server.next_event()]
    assert Ping(seq=4) in events
    assert server.state is ConnectionState.OPEN


def test_a_clients_non_fatal_error_for_an_opened_command_is_not_fatal() -> None:
    # Section 6: a server acts on no non-fatal error from a client.
    client, server = open_pair()
    deliver(client, server, _run(1))
    error = Error(code="x.y", message="m", fatal=False, id=1)
    server.receive_data(encode_frame(error) + encode_frame(Ping(seq=5)))
    events = [server.next_event(), server.next_event()]
    assert events[-1] == Ping(seq=5)
    assert server.state is ConnectionState.OPEN
