"""File transfers in the protocol core: the put/get/file/done messages and the
state machine of a transfer (protocol.md section 5.6, "File transfer").

As in test_connection.py, every illegal frame is checked from both ends: the
side that tries to send it gets a LocalProtocolError (nothing sent, state
unchanged), and the side that receives the same bytes, forged, gets a
RemoteProtocolError with the same code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rexec.protocol import (
    Cancel,
    Connection,
    Done,
    Error,
    ErrorCode,
    Exit,
    File,
    Get,
    Limits,
    LocalProtocolError,
    Put,
    RemoteProtocolError,
    Role,
    Run,
    Started,
    Stderr,
    Stdin,
    StdinCredit,
    StdinEof,
    Stdout,
    decode_header,
    encode_frame,
)

from .helpers import (
    FAST,
    assert_refused_when_received,
    assert_refused_when_sent,
    byte_by_byte,
    decode_chunks,
    deliver,
    handshake,
    new_decoder,
    open_pair,
    pair_of,
    receive_chunks,
    split,
)

UNEXPECTED = ErrorCode.PROTOCOL_UNEXPECTED
BAD_ID = ErrorCode.COMMAND_BAD_ID
WINDOW = ErrorCode.FLOW_WINDOW_EXCEEDED
C, S = Role.CLIENT, Role.SERVER

CONTENT = b"hello\x00\xff world!"  # 14 bytes
DIGEST = hashlib.sha256(CONTENT).hexdigest()
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def _put(command_id: int = 1, size: int = len(CONTENT), **kwargs: object) -> Put:
    return Put(id=command_id, path="dir/file", size=size, sha256=DIGEST, **kwargs)  # type: ignore[arg-type]


def _get(command_id: int = 1) -> Get:
    return Get(id=command_id, path="dir/file")


def _error(command_id: int | None = 1, code: str = "file.not_found") -> Error:
    return Error(code=code, message="m", fatal=False, id=command_id)


def _exit(command_id: int = 1) -> Exit:
    return Exit(id=command_id, exit_code=0, signal=None, duration=0.0)


def _frame(header: bytes) -> bytes:
    return len(header).to_bytes(4, "little") + header


# --- Messages: exact bytes, and their schema ([frame.header.schema]) -------------------

VECTORS = [
    (
        _put(3, mode=0o755),
        b'{"type":"put","data_size":0,"id":3,"path":"dir/file","size":14,"mode":493,'
        b'"sha256":"' + DIGEST.encode() + b'","mtime":null,"resume":null}',
    ),
    (
        Put(id=3, path="f", mtime=1.5, resume="k-1"),
        b'{"type":"put","data_size":0,"id":3,"path":"f","size":null,"mode":420,'
        b'"sha256":null,"mtime":1.5,"resume":"k-1"}',
    ),
    (_get(4), b'{"type":"get","data_size":0,"id":4,"path":"dir/file","offset":0}'),
    (
        File(id=4, size=14, mode=0o640, mtime=1700000000.25),
        b'{"type":"file","data_size":0,"id":4,"size":14,"mode":416,"mtime":1700000000.25}',
    ),
    (
        Done(id=4, size=14, sha256=DIGEST),
        b'{"type":"done","data_size":0,"id":4,"size":14,"sha256":"' + DIGEST.encode() + b'"}',
    ),
    # A command's stdin_eof is unchanged; a put's may end with its size and digest.
    (StdinEof(id=4), b'{"type":"stdin_eof","data_size":0,"id":4}'),
    (
        StdinEof(id=4, size=14, sha256=DIGEST),
        b'{"type":"stdin_eof","data_size":0,"id":4,"size":14,"sha256":"' + DIGEST.encode() + b'"}',
    ),
]


@pytest.mark.parametrize(
    ("message", "header"),
    VECTORS,
    ids=["put", "put_unsized", "get", "file", "done", "stdin_eof", "stdin_eof_of_put"],
)
def test_messages_encode_and_decode_byte_for_byte(message: object, header: bytes) -> None:
    wire = _frame(header)
    assert encode_frame(message) == wire  # type: ignore[arg-type]
    assert decode_header(header) == message
    # The decoder reads every type; it is the state machine that refuses a
    # type from the wrong side.
    assert decode_chunks(new_decoder(), byte_by_byte(wire)) == [message]


def test_put_mode_defaults_to_0644() -> None:
    header = json.dumps({"type": "put", "id": 1, "path": "f", "size": 0, "sha256": EMPTY_DIGEST})
    assert decode_header(header.encode()).mode == 0o644


BAD_HEADERS = {
    "put_empty_path": {"type": "put", "id": 1, "path": "", "size": 0, "sha256": EMPTY_DIGEST},
    "put_nul_in_path": {"type": "put", "id": 1, "path": "a\x00b", "size": 0,
                        "sha256": EMPTY_DIGEST},
    "put_negative_size": {"type": "put", "id": 1, "path": "f", "size": -1,
                          "sha256": EMPTY_DIGEST},
    "put_size_as_string": {"type": "put", "id": 1, "path": "f", "size": "3",
                           "sha256": EMPTY_DIGEST},
    "put_mode_too_big": {"type": "put", "id": 1, "path": "f", "size": 0, "mode": 0o10000,
                         "sha256": EMPTY_DIGEST},
    "put_mode_negative": {"type": "put", "id": 1, "path": "f", "size": 0, "mode": -1,
                          "sha256": EMPTY_DIGEST},
    "put_sha256_uppercase": {"type": "put", "id": 1, "path": "f", "size": 0,
                             "sha256": EMPTY_DIGEST.upper()},
    "put_sha256_short": {"type": "put", "id": 1, "path": "f", "size": 0,
                         "sha256": EMPTY_DIGEST[:-2]},
    "put_mtime_as_string": {"type": "put", "id": 1, "path": "f", "mtime": "1"},
    "put_resume_with_slash": {"type": "put", "id": 1, "path": "f", "resume": "a/b"},
    "put_resume_empty": {"type": "put", "id": 1, "path": "f", "resume": ""},
    "put_resume_too_long": {"type": "put", "id": 1, "path": "f", "resume": "k" * 65},
    "get_offset_negative": {"type": "get", "id": 1, "path": "f", "offset": -1},
    "stdin_eof_size_negative": {"type": "stdin_eof", "id": 1, "size": -1},
    "stdin_eof_sha256_short": {"type": "stdin_eof", "id": 1, "sha256": EMPTY_DIGEST[:-1]},
    "put_with_body": {"type": "put", "id": 1, "path": "f", "size": 0, "sha256": EMPTY_DIGEST,
                      "data_size": 1},
    "put_unknown_member": {"type": "put", "id": 1, "path": "f", "size": 0,
                           "sha256": EMPTY_DIGEST, "append": True},
    "get_without_path": {"type": "get", "id": 1},
    "get_path_null": {"type": "get", "id": 1, "path": None},
    "file_without_mode": {"type": "file", "id": 1, "size": 0},
    "file_mode_too_big": {"type": "file", "id": 1, "size": 0, "mode": 0o10000},
    "done_without_sha256": {"type": "done", "id": 1, "size": 0},
    "done_size_float": {"type": "done", "id": 1, "size": 1.0, "sha256": EMPTY_DIGEST},
}  # fmt: skip


def test_an_infinite_mtime_is_bad_json() -> None:
    # protocol.md [frame.header.json]: Infinity is not JSON, whichever member holds it.
    with pytest.raises(RemoteProtocolError) as info:
        decode_header(json.dumps({"type": "put", "id": 1, "path": "f", "mtime": 1e999}).encode())
    assert info.value.code is ErrorCode.HEADER_BAD_JSON


@pytest.mark.parametrize("name", list(BAD_HEADERS))
def test_bad_transfer_headers_are_header_invalid(name: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_header(json.dumps(BAD_HEADERS[name]).encode())
    assert info.value.code is ErrorCode.HEADER_INVALID
    assert "\x00" not in info.value.message


# --- The state machine: illegal frames, from both ends ----------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[tuple[Role, object], ...]
    sender: Role
    message: object
    code: ErrorCode


SMALL_WINDOW = Limits(stdin_window=8)
PUT_1 = (C, _put(1))
GET_1 = (C, _get(1))
FILE_1 = (S, File(id=1, size=3, mode=0o644))
EOF_1 = (C, StdinEof(id=1))
UNSIZED_1 = (C, Put(id=1, path="dir/file"))
RESUMABLE_1 = (C, _put(1, resume="key"))

CASES = [
    # [transfer.id]: transfers share the increasing ids of commands.
    Case("put_id_repeated", ((C, Run(id=5, shell="true")),), C, _put(5), BAD_ID),
    Case("get_id_decreasing", ((C, _put(5)),), C, _get(4), BAD_ID),
    Case("run_id_after_get", ((C, _get(5)),), C, Run(id=5, shell="true"), BAD_ID),
    Case("done_future_id", (PUT_1,), S, Done(id=2, size=0, sha256=EMPTY_DIGEST), BAD_ID),
    Case("file_future_id", (GET_1,), S, File(id=2, size=0, mode=0), BAD_ID),
    # Transfer requests come from the client only, file and done from the server only.
    Case("put_from_server", (), S, _put(1), UNEXPECTED),
    Case("get_from_server", (), S, _get(1), UNEXPECTED),
    Case("file_from_client", (GET_1,), C, File(id=1, size=0, mode=0), UNEXPECTED),
    Case("done_from_client", (PUT_1,), C, Done(id=1, size=0, sha256=EMPTY_DIGEST), UNEXPECTED),
    # [transfer.no_process]: a transfer has no process, so no started or exit
    # (a signal or resize for one is dropped: test_connection.py, DROPPED).
    Case("started_for_put", (PUT_1,), S, Started(id=1, pid=1), UNEXPECTED),
    Case("started_for_get", (GET_1,), S, Started(id=1, pid=1), UNEXPECTED),
    Case("exit_for_put", (PUT_1, EOF_1), S, _exit(1), UNEXPECTED),
    Case("exit_for_get", (GET_1, FILE_1), S, _exit(1), UNEXPECTED),
    Case("stdout_for_put", (PUT_1,), S, Stdout.with_data(1, b"x"), UNEXPECTED),
    Case("stderr_for_put", (PUT_1,), S, Stderr.with_data(1, b"x"), UNEXPECTED),
    Case("stderr_for_get", (GET_1, FILE_1), S, Stderr.with_data(1, b"x"), UNEXPECTED),
    Case("file_for_put", (PUT_1,), S, File(id=1, size=0, mode=0), UNEXPECTED),
    Case("credit_for_get", (GET_1,), S, StdinCredit(id=1, bytes=1), UNEXPECTED),
    # ... and a command is not a transfer.
    Case("done_for_run", ((C, Run(id=1, shell="true")), (S, Started(id=1, pid=9))), S,
         Done(id=1, size=0, sha256=EMPTY_DIGEST), UNEXPECTED),
    Case("file_for_run", ((C, Run(id=1, shell="true")), (S, Started(id=1, pid=9))), S,
         File(id=1, size=0, mode=0), UNEXPECTED),
    # [transfer.put.data]: the content is stdin, under the usual credit and eof
    # rules (stdin after its eof is dropped: test_connection.py, DROPPED).
    Case("put_stdin_over_window", (PUT_1,), C, Stdin.with_data(1, b"x" * 9), WINDOW),
    # [transfer.put.done]: done only after the client's stdin_eof, with the declared size.
    Case("put_done_before_eof", (PUT_1,), S, Done(id=1, size=14, sha256=DIGEST), UNEXPECTED),
    Case("put_done_wrong_size", (PUT_1, EOF_1), S, Done(id=1, size=13, sha256=DIGEST),
         UNEXPECTED),
    # [transfer.put.end]: a put's stdin_eof gives exactly what the put left null.
    Case("eof_repeats_the_size", (PUT_1,), C, StdinEof(id=1, size=14), UNEXPECTED),
    Case("eof_repeats_the_digest", (PUT_1,), C, StdinEof(id=1, sha256=DIGEST), UNEXPECTED),
    Case("eof_lacks_the_size", (UNSIZED_1,), C, StdinEof(id=1, sha256=DIGEST), UNEXPECTED),
    Case("eof_lacks_the_digest", (UNSIZED_1,), C, StdinEof(id=1, size=14), UNEXPECTED),
    Case("eof_of_a_run_with_size", ((C, Run(id=1, shell="cat", stdin=True)),), C,
         StdinEof(id=1, size=0), UNEXPECTED),
    Case("unsized_done_other_size", (UNSIZED_1, (C, StdinEof(id=1, size=14, sha256=DIGEST))), S,
         Done(id=1, size=13, sha256=DIGEST), UNEXPECTED),
    # [transfer.put.resume]: file once and first, then credit; none for another put.
    Case("resume_credit_before_file", (RESUMABLE_1,), S, StdinCredit(id=1, bytes=1), UNEXPECTED),
    Case("resume_stdin_before_file", (RESUMABLE_1,), C, Stdin.with_data(1, b"x"), WINDOW),
    Case("resume_file_twice", (RESUMABLE_1, (S, File(id=1, size=3, mode=0o600))), S,
         File(id=1, size=3, mode=0o600), UNEXPECTED),
    Case("resume_file_beyond_size", (RESUMABLE_1,), S, File(id=1, size=15, mode=0o600),
         UNEXPECTED),
    Case("resume_done_before_file", (RESUMABLE_1, EOF_1), S, Done(id=1, size=14, sha256=DIGEST),
         UNEXPECTED),
    # [transfer.get.offset]: file no shorter than the offset; the rest of it follows.
    Case("get_file_before_offset", ((C, Get(id=1, path="f", offset=4)),), S,
         File(id=1, size=3, mode=0o644), UNEXPECTED),
    Case("get_offset_stdout_beyond", ((C, Get(id=1, path="f", offset=2)), FILE_1,
                                      (S, Stdout.with_data(1, b"a"))), S,
         Stdout.with_data(1, b"b"), UNEXPECTED),
    # [transfer.get.stream]: file first, exactly file.size bytes, then done.
    Case("get_stdout_before_file", (GET_1,), S, Stdout.with_data(1, b"x"), UNEXPECTED),
    Case("get_done_before_file", (GET_1,), S, Done(id=1, size=0, sha256=EMPTY_DIGEST),
         UNEXPECTED),
    Case("get_file_twice", (GET_1, FILE_1), S, File(id=1, size=3, mode=0o644), UNEXPECTED),
    Case("get_stdout_beyond_size", (GET_1, FILE_1, (S, Stdout.with_data(1, b"ab"))), S,
         Stdout.with_data(1, b"cd"), UNEXPECTED),
    Case("get_done_short", (GET_1, FILE_1, (S, Stdout.with_data(1, b"ab"))), S,
         Done(id=1, size=2, sha256=EMPTY_DIGEST), UNEXPECTED),
    Case("get_done_wrong_size", (GET_1, FILE_1, (S, Stdout.with_data(1, b"abc"))), S,
         Done(id=1, size=4, sha256=EMPTY_DIGEST), UNEXPECTED),
    # [transfer.terminal.one]: nothing for the id after done or an error.
    Case("done_twice", (PUT_1, EOF_1, (S, Done(id=1, size=14, sha256=DIGEST))), S,
         Done(id=1, size=14, sha256=DIGEST), UNEXPECTED),
    Case("credit_after_done", (PUT_1, EOF_1, (S, Done(id=1, size=14, sha256=DIGEST))), S,
         StdinCredit(id=1, bytes=1), UNEXPECTED),
    Case("stdout_after_get_error", (GET_1, FILE_1, (S, _error(1, "file.failed"))), S,
         Stdout.with_data(1, b"x"), UNEXPECTED),
    Case("error_after_done", (GET_1, (S, File(id=1, size=0, mode=0)),
                              (S, Done(id=1, size=0, sha256=EMPTY_DIGEST))), S,
         _error(1), UNEXPECTED),
]  # fmt: skip


def _setup(case: Case) -> tuple[Connection, Connection]:
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER, limits=SMALL_WINDOW)
    handshake(client, server)
    for role, message in case.steps:
        sender, receiver = pair_of(client, server, role)
        deliver(sender, receiver, message)
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


# --- Legal conversations ----------------------------------------------------------------


def test_put_conversation() -> None:
    # [transfer.put.data], [stdin.credit], [transfer.put.done]
    client, server = open_pair(SMALL_WINDOW)
    deliver(client, server, _put(1))
    assert client.is_active(1) and server.is_active(1)
    assert client.stdin_credit(1) == 8
    deliver(client, server, Stdin.with_data(1, CONTENT[:8]))
    assert client.stdin_credit(1) == 0
    deliver(server, client, StdinCredit(id=1, bytes=8))
    deliver(client, server, Stdin.with_data(1, CONTENT[8:]))
    deliver(client, server, StdinEof(id=1))
    assert client.stdin_credit(1) == 0
    deliver(server, client, Done(id=1, size=len(CONTENT), sha256=DIGEST))
    assert not client.is_active(1) and not server.is_active(1)
    assert client.active_commands == server.active_commands == 0


def test_get_conversation() -> None:
    # [transfer.get.stream]
    client, server = open_pair()
    deliver(client, server, _get(7))
    assert client.stdin_credit(7) == 0  # a get takes no stdin
    deliver(server, client, File(id=7, size=len(CONTENT), mode=0o600))
    deliver(server, client, Stdout.with_data(7, CONTENT[:5]))
    deliver(server, client, Stdout.with_data(7, CONTENT[5:]))
    deliver(server, client, Done(id=7, size=len(CONTENT), sha256=DIGEST))
    assert not client.is_active(7) and not server.is_active(7)


def test_empty_file_both_ways() -> None:
    client, server = open_pair()
    deliver(client, server, Put(id=1, path="f", size=0, sha256=EMPTY_DIGEST))
    deliver(client, server, StdinEof(id=1))
    deliver(server, client, Done(id=1, size=0, sha256=EMPTY_DIGEST))
    deliver(client, server, _get(2))
    deliver(server, client, File(id=2, size=0, mode=0o644))
    deliver(server, client, Done(id=2, size=0, sha256=EMPTY_DIGEST))
    assert client.active_commands == server.active_commands == 0


@pytest.mark.parametrize("when", ["at_once", "after_some_data", "after_eof"])
def test_put_may_fail_at_any_point(when: str) -> None:
    # [transfer.terminal.one]: an error with the id ends a put whenever it comes,
    # and stdin the client sent before it arrived is dropped, not an error.
    client, server = open_pair()
    deliver(client, server, _put(1))
    if when != "at_once":
        deliver(client, server, Stdin.with_data(1, b"abc"))
    if when == "after_eof":
        deliver(client, server, StdinEof(id=1))
    in_flight = b"" if when == "after_eof" else client.send(Stdin.with_data(1, b"d"))
    error = _error(1, "file.digest_mismatch")
    assert deliver(server, client, error) == error
    assert not server.is_active(1) and not client.is_active(1)
    assert receive_chunks(server, [in_flight]) == []  # crossed the error: dropped


@pytest.mark.parametrize("after_file", [False, True])
def test_get_may_fail_before_or_after_file(after_file: bool) -> None:
    client, server = open_pair()
    deliver(client, server, _get(1))
    if after_file:
        deliver(server, client, File(id=1, size=10, mode=0o644))
        deliver(server, client, Stdout.with_data(1, b"abc"))
    deliver(server, client, _error(1, "file.size_mismatch"))
    assert not client.is_active(1) and not server.is_active(1)


@pytest.mark.parametrize("opening", [_put(1), _get(1)], ids=["put", "get"])
def test_cancel_is_legal_for_a_transfer(opening: Put | Get) -> None:
    # [transfer.cancel]: the server answers with file.cancelled; a cancel that
    # crosses the terminal frame is dropped.
    client, server = open_pair()
    deliver(client, server, opening)
    assert deliver(client, server, Cancel(id=1)) == Cancel(id=1)
    late = client.send(Cancel(id=1))
    deliver(server, client, _error(1, "file.cancelled"))
    assert receive_chunks(server, [late]) == []


def test_transfers_and_commands_interleave() -> None:
    # [command.concurrent]: runs, puts and gets share a connection and its ids.
    client, server = open_pair()
    deliver(client, server, Run(id=1, shell="true"))
    deliver(client, server, _get(2))
    deliver(client, server, _put(3))
    deliver(server, client, Started(id=1, pid=5))
    deliver(server, client, File(id=2, size=1, mode=0o644))
    deliver(client, server, Stdin.with_data(3, CONTENT))
    deliver(server, client, Stdout.with_data(1, b"out"))
    deliver(server, client, Stdout.with_data(2, b"f"))
    assert client.active_commands == server.active_commands == 3
    deliver(client, server, StdinEof(id=3))
    deliver(server, client, Done(id=3, size=len(CONTENT), sha256=DIGEST))
    deliver(server, client, Done(id=2, size=1, sha256=hashlib.sha256(b"f").hexdigest()))
    deliver(server, client, _exit(1))
    assert client.active_commands == server.active_commands == 0
    assert server.last_command_id == client.last_command_id == 3


def test_failed_send_leaves_transfer_state_unchanged() -> None:
    client, server = open_pair()
    deliver(client, server, _get(1))
    deliver(server, client, File(id=1, size=3, mode=0o644))
    with pytest.raises(LocalProtocolError):
        server.send(Stdout.with_data(1, b"abcd"))  # one byte too many
    deliver(server, client, Stdout.with_data(1, b"abc"))  # the whole budget is still there
    with pytest.raises(LocalProtocolError):
        server.send(File(id=1, size=3, mode=0o644))
    deliver(server, client, Done(id=1, size=3, sha256=hashlib.sha256(b"abc").hexdigest()))


def _get_stream(sizes: list[int]) -> tuple[bytes, list[object]]:
    """The server's bytes for a get answered with chunks of ``sizes``."""
    total = sum(sizes)
    data = bytes(range(256)) * (total // 256 + 1)
    messages: list[object] = [File(id=1, size=total, mode=0o644)]
    offset = 0
    for size in sizes:
        messages.append(Stdout.with_data(1, data[offset : offset + size]))
        offset += size
    messages.append(Done(id=1, size=total, sha256=hashlib.sha256(data[:total]).hexdigest()))
    return b"".join(encode_frame(message) for message in messages), messages  # type: ignore[arg-type]


@FAST
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=300), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_get_stream_at_random_cuts(sizes: list[int], cuts: list[int]) -> None:
    # [frame.stream.chunking] for a whole get, as a client receives it.
    client, server = open_pair()
    deliver(client, server, _get(1))
    wire, messages = _get_stream(sizes)
    for message in messages:
        server.send(message)  # type: ignore[arg-type]
    assert receive_chunks(client, split(wire, cuts)) == messages
    assert not client.is_active(1)


def test_unsized_put_conversation() -> None:
    # [transfer.put.end]: size and digest unknown at the start travel at the end.
    client, server = open_pair(SMALL_WINDOW)
    deliver(client, server, Put(id=1, path="f", sha256=DIGEST))
    deliver(client, server, Stdin.with_data(1, CONTENT[:8]))
    deliver(server, client, StdinCredit(id=1, bytes=8))
    deliver(client, server, Stdin.with_data(1, CONTENT[8:]))
    deliver(client, server, StdinEof(id=1, size=len(CONTENT)))
    deliver(server, client, Done(id=1, size=len(CONTENT), sha256=DIGEST))
    deliver(client, server, Put(id=2, path="f"))
    deliver(client, server, StdinEof(id=2, size=0, sha256=EMPTY_DIGEST))
    deliver(server, client, Done(id=2, size=0, sha256=EMPTY_DIGEST))
    assert client.active_commands == server.active_commands == 0


def test_resumable_put_conversation() -> None:
    # [transfer.put.resume]: no credit until file says where to go on from.
    client, server = open_pair(SMALL_WINDOW)
    deliver(client, server, _put(1, resume="key"))
    assert client.stdin_credit(1) == 0
    deliver(server, client, File(id=1, size=10, mode=0o644))
    deliver(server, client, StdinCredit(id=1, bytes=8))
    deliver(client, server, Stdin.with_data(1, CONTENT[10:]))
    deliver(client, server, StdinEof(id=1))
    deliver(server, client, Done(id=1, size=len(CONTENT), sha256=DIGEST))
    assert client.active_commands == server.active_commands == 0


def test_get_from_an_offset() -> None:
    # [transfer.get.offset]: the bytes from offset on, done for the whole file.
    client, server = open_pair()
    deliver(client, server, Get(id=1, path="f", offset=10))
    deliver(server, client, File(id=1, size=len(CONTENT), mode=0o644))
    deliver(server, client, Stdout.with_data(1, CONTENT[10:]))
    deliver(server, client, Done(id=1, size=len(CONTENT), sha256=DIGEST))
    assert not client.is_active(1)
